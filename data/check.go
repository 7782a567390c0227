package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"
)

// DamagedPartError names a part file of the store that cannot be read: it
// is missing, truncated or not Parquet. Only the months that hold it are
// affected; the message says so in words, without a query in it.
type DamagedPartError struct {
	// Path is the file relative to the store directory,
	// "month=YYYY-MM/part-….parquet".
	Path string
	// Reason says in words what is wrong.
	Reason string
	// Err is the underlying error, for logs.
	Err error
}

func (e *DamagedPartError) Error() string {
	return fmt.Sprintf("store file %s is damaged (%s): restore it from a backup; months without damaged files still work", e.Path, e.Reason)
}

// Unwrap returns the underlying error.
func (e *DamagedPartError) Unwrap() error { return e.Err }

// CheckPart reads the footer of one committed part: the check that a file
// a snapshot lists can be read. It returns nil or a *DamagedPartError.
func CheckPart(f PartFile) error {
	damaged := func(reason string, err error) error {
		rel := monthDirPrefix + f.Month + "/" + filepath.Base(f.Path)
		return &DamagedPartError{Path: rel, Reason: reason, Err: err}
	}
	file, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return damaged("the file is missing", err)
	}
	if err != nil {
		return damaged("the file cannot be opened", err)
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return damaged("the file cannot be opened", err)
	}
	var magic [4]byte
	if st.Size() < 12 {
		return damaged("the file is truncated", fmt.Errorf("%d bytes", st.Size()))
	}
	if _, err := file.ReadAt(magic[:], st.Size()-4); err != nil || string(magic[:]) != "PAR1" {
		return damaged("the file is truncated or not Parquet: its end marker is missing", err)
	}
	pf, err := parquet.OpenFile(file, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return damaged("its Parquet footer cannot be read", err)
	}
	if pf.NumRows() != f.Rows {
		return damaged(fmt.Sprintf("it holds %d rows where the manifest lists %d", pf.NumRows(), f.Rows), nil)
	}
	return nil
}

// CheckParts checks every file with CheckPart and returns the damaged ones'
// errors joined (nil when all are readable).
func CheckParts(files []PartFile) error {
	var errs []error
	for _, f := range files {
		if err := CheckPart(f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

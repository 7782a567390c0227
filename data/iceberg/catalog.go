package iceberg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/apache/iceberg-go/table"

	"worklog/internal/fsutil"
)

// Metadata files. The layout is the one of Iceberg's Hadoop (filesystem)
// tables, which engines load from the table's location alone:
//
//	<data>/worklog/metadata/v<N>.metadata.json   the table's N-th state
//	<data>/worklog/metadata/version-hint.text    N, the current one
//
// vN.metadata.json is created with fsutil.WriteNew, which refuses an
// existing name: the metadata file is the commit point of the table, and
// no state is ever overwritten. version-hint.text follows it, written with
// fsutil.WriteFile. A crash between the two leaves a hint one behind;
// reading the table takes the highest N for which the files v<hint>,
// v<hint+1>, ... exist, so the committed state is never lost.
const (
	metadataDirName = "metadata"
	versionHintName = "version-hint.text"
)

var metadataNamePattern = regexp.MustCompile(`^v([0-9]+)\.metadata\.json$`)

func metadataName(version int) string { return fmt.Sprintf("v%d.metadata.json", version) }

// errNoTable says the metadata directory holds no table yet.
var errNoTable = errors.New("no iceberg table")

// currentVersion finds the table's current metadata version in dir, the
// metadata directory: the version hint, then any later versions a crash
// left without a hint. Without a hint it takes the highest version in dir.
// errNoTable when there is none.
func currentVersion(dir string) (int, error) {
	v := 0
	b, err := os.ReadFile(filepath.Join(dir, versionHintName))
	switch {
	case err == nil:
		n, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if perr != nil || n < 1 {
			return 0, fmt.Errorf("%s: not a version number: %q", filepath.Join(dir, versionHintName), b)
		}
		v = n
	case errors.Is(err, fs.ErrNotExist):
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("list table metadata: %w", err)
		}
		for _, e := range entries {
			if m := metadataNamePattern.FindStringSubmatch(e.Name()); m != nil {
				if n, err := strconv.Atoi(m[1]); err == nil && n > v {
					v = n
				}
			}
		}
		if v == 0 {
			return 0, errNoTable
		}
	default:
		return 0, fmt.Errorf("read %s: %w", versionHintName, err)
	}
	for {
		_, err := os.Stat(filepath.Join(dir, metadataName(v+1)))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("table metadata: %w", err)
		}
		v++
	}
	return v, nil
}

// catalog is the table's catalog for iceberg-go: the metadata directory
// itself, with no catalog service. iceberg-go's transactions write the
// manifests and build the new metadata; CommitTable installs it as the
// next vN.metadata.json and moves version-hint.text.
type catalog struct{ t *Table }

var _ table.CatalogIO = catalog{}

// LoadTable loads the current state of the table.
func (c catalog) LoadTable(ctx context.Context, _ table.Identifier) (*table.Table, error) {
	tbl, _, err := c.t.load(ctx)
	return tbl, err
}

// CommitTable checks reqs against the current metadata, applies updates
// and installs the result as the next version.
func (c catalog) CommitTable(ctx context.Context, _ table.Identifier, reqs []table.Requirement, updates []table.Update) (table.Metadata, string, error) {
	cur, version, err := c.t.load(ctx)
	if err != nil {
		return nil, "", err
	}
	base := cur.Metadata()
	for _, r := range reqs {
		if err := r.Validate(base); err != nil {
			return nil, "", fmt.Errorf("%w: %w", table.ErrCommitFailed, err)
		}
	}
	next, err := table.UpdateTableMetadata(base, updates, cur.MetadataLocation())
	if err != nil {
		return nil, "", fmt.Errorf("apply table updates: %w", err)
	}
	loc, err := c.t.writeMetadata(next, version+1)
	if err != nil {
		return nil, "", err
	}
	return next, loc, nil
}

// writeMetadata installs md as metadata version v and points the hint at
// it. It returns the new metadata file's location.
func (t *Table) writeMetadata(md table.Metadata, v int) (string, error) {
	b, err := json.Marshal(md)
	if err != nil {
		return "", fmt.Errorf("encode table metadata: %w", err)
	}
	if err := os.MkdirAll(t.metaDir, dirMode); err != nil {
		return "", fmt.Errorf("create table metadata dir: %w", err)
	}
	path := filepath.Join(t.metaDir, metadataName(v))
	if err := fsutil.WriteNew(path, b, fileMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%w: %s exists: another writer committed", table.ErrCommitFailed, metadataName(v))
		}
		return "", fmt.Errorf("write table metadata: %w", err)
	}
	if err := fsutil.WriteFile(filepath.Join(t.metaDir, versionHintName), []byte(strconv.Itoa(v)), fileMode); err != nil {
		// The new version is committed; readers that follow the hint
		// see it once the next commit moves the hint.
		t.log.Warn("iceberg: cannot update version-hint.text; it stays one version behind until the next publish", "err", err)
	}
	return fileURI(path), nil
}

// sweepTemp removes the temporary files of writes a crash interrupted in
// the metadata directory. The caller holds the store's writer lock.
func (t *Table) sweepTemp() {
	entries, err := os.ReadDir(t.metaDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fsutil.IsTemp(e.Name()) {
			if err := os.Remove(filepath.Join(t.metaDir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.log.Warn("iceberg: cannot remove a temporary file", "path", e.Name(), "err", err)
			}
		}
	}
}

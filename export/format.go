package export

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// Format is an export format: one of Formats.
type Format string

// The export formats.
const (
	FormatJSON    Format = "json"
	FormatCSV     Format = "csv"
	FormatXLSX    Format = "xlsx"
	FormatNDJSON  Format = "ndjson"
	FormatParquet Format = "parquet"
	FormatArrow   Format = "arrow"
)

// formatInfo is everything the product knows about one format. The table
// below is the only list of formats: ParseFormat, the query parser (through
// FormatNames), Accept negotiation, the OpenAPI document, background jobs
// and `worklog export` all read it.
type formatInfo struct {
	format Format
	// mediaType is the Content-Type of a response, with its parameters.
	mediaType string
	// attachment formats are files a browser should save rather than show.
	attachment bool
	// ownCore: the encoder works on a goroutine of its own (ParquetEncoder),
	// so an export keeps a core busy encoding beside the reading.
	ownCore bool
	// copiesValues: the encoder copies every value it keeps before it
	// releases a batch, or keeps the arrays themselves with a reference of
	// their own (ParquetEncoder: strings into its dictionaries, the other
	// columns' arrays retained until their row group is written; the text
	// encoders keep nothing: a batch is bytes in their buffer when Write
	// returns), so the read may build later batches in the memory of
	// released ones: a pooled buffer returns to its pool only with its last
	// reference (Plan.ReuseReleased).
	copiesValues bool
	// newEncoder builds the encoder; the schema is already checked.
	newEncoder func(w io.Writer, schema *arrow.Schema, opts EncoderOptions) (Encoder, error)
}

// formatTable lists the formats in the order documents name them (SPEC §4).
var formatTable = []formatInfo{
	{FormatJSON, "application/json", false, false, true, func(w io.Writer, s *arrow.Schema, _ EncoderOptions) (Encoder, error) {
		return NewJSONEncoder(w, s), nil
	}},
	{FormatCSV, "text/csv; charset=utf-8", true, false, true, func(w io.Writer, s *arrow.Schema, o EncoderOptions) (Encoder, error) {
		e := NewCSVEncoder(w, s, o.CSVFormulaGuard)
		e.BOM = o.CSVBOM
		return e, nil
	}},
	{FormatXLSX, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", true, false, false, func(w io.Writer, s *arrow.Schema, o EncoderOptions) (Encoder, error) {
		return NewXLSXEncoder(w, s, o)
	}},
	{FormatNDJSON, "application/x-ndjson", false, false, true, func(w io.Writer, s *arrow.Schema, _ EncoderOptions) (Encoder, error) {
		return NewNDJSONEncoder(w, s), nil
	}},
	{FormatParquet, "application/vnd.apache.parquet", true, true, true, func(w io.Writer, s *arrow.Schema, o EncoderOptions) (Encoder, error) {
		return NewParquetEncoder(w, s, o)
	}},
	{FormatArrow, "application/vnd.apache.arrow.stream", true, false, false, func(w io.Writer, s *arrow.Schema, o EncoderOptions) (Encoder, error) {
		return NewArrowEncoder(w, s, o), nil
	}},
}

// Compile-time checks that the concrete encoders satisfy Encoder.
var (
	_ Encoder = (*JSONEncoder)(nil)
	_ Encoder = (*NDJSONEncoder)(nil)
	_ Encoder = (*CSVEncoder)(nil)
	_ Encoder = (*XLSXEncoder)(nil)
	_ Encoder = (*ParquetEncoder)(nil)
	_ Encoder = (*ArrowEncoder)(nil)
	_ aborter = (*XLSXEncoder)(nil)
	_ aborter = (*ParquetEncoder)(nil)
)

func lookupFormat(f Format) (formatInfo, bool) {
	for _, fi := range formatTable {
		if fi.format == f {
			return fi, true
		}
	}
	return formatInfo{}, false
}

// EncoderCores is the number of cores an export in format f keeps busy
// encoding beside the caller's goroutine: 1 for Parquet, whose encoder
// runs on a goroutine of its own, else 0. A one-shot export gives its
// DuckDB that many threads fewer than the machine's cores (`worklog
// export`), so that DuckDB's workers and the encoder do not contend for
// the same cores.
func EncoderCores(f Format) int {
	if fi, ok := lookupFormat(f); ok && fi.ownCore {
		return 1
	}
	return 0
}

// copiesValues reports whether f's encoder copies what it keeps of a batch
// before releasing it (see formatInfo.copiesValues).
func copiesValues(f Format) bool {
	fi, ok := lookupFormat(f)
	return ok && fi.copiesValues
}

// Formats lists every export format, in the order documents name them.
func Formats() []Format {
	out := make([]Format, len(formatTable))
	for i, fi := range formatTable {
		out[i] = fi.format
	}
	return out
}

// FormatNames lists the format names, for parsers and documents that take
// plain strings (query.Options.Formats, the OpenAPI enum, help texts).
func FormatNames() []string {
	out := make([]string, len(formatTable))
	for i, fi := range formatTable {
		out[i] = string(fi.format)
	}
	return out
}

// Errors returned by the encoders; callers match them with errors.Is.
var (
	// ErrUnknownFormat is returned by ParseFormat and NewEncoder for a format
	// that Formats does not list.
	ErrUnknownFormat = errors.New("unknown export format")
	// ErrUnsupportedType is returned for a schema with a column whose Arrow
	// type has no export representation.
	ErrUnsupportedType = errors.New("unsupported arrow type")
	// ErrSchemaMismatch is returned by Write for a batch whose schema differs
	// from the encoder's.
	ErrSchemaMismatch = errors.New("record schema does not match the encoder's schema")
	// ErrClosed is returned by Write after Close.
	ErrClosed = errors.New("encoder closed")
)

// ParseFormat parses a format name, ignoring case.
func ParseFormat(s string) (Format, error) {
	if fi, ok := lookupFormat(Format(strings.ToLower(s))); ok {
		return fi.format, nil
	}
	return "", fmt.Errorf("%w %q (want %s)", ErrUnknownFormat, s, strings.Join(FormatNames(), ", "))
}

// FormatOfMediaType returns the format whose media type is mt (type/subtype,
// case-insensitive, parameters ignored), for Accept negotiation.
func FormatOfMediaType(mt string) (Format, bool) {
	mt, _, _ = strings.Cut(mt, ";")
	mt = strings.TrimSpace(mt)
	for _, fi := range formatTable {
		if strings.EqualFold(fi.format.MediaType(), mt) {
			return fi.format, true
		}
	}
	return "", false
}

// FormatOfFileName returns the format named by a file name's extension
// (".ndjson", ".parquet", ...), case-insensitive.
func FormatOfFileName(name string) (Format, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", false
	}
	f, err := ParseFormat(name[i+1:])
	return f, err == nil
}

// ContentType is the media type of the format with its parameters, for the
// Content-Type header.
func (f Format) ContentType() string {
	if fi, ok := lookupFormat(f); ok {
		return fi.mediaType
	}
	return "application/octet-stream"
}

// MediaType is the format's media type without parameters ("text/csv"), as
// an Accept header or an OpenAPI content map names it.
func (f Format) MediaType() string {
	mt, _, _ := strings.Cut(f.ContentType(), ";")
	return mt
}

// Attachment reports whether a response in this format is a file to save
// (Content-Disposition: attachment) rather than a document to show.
func (f Format) Attachment() bool {
	fi, ok := lookupFormat(f)
	return ok && fi.attachment
}

// Extension is the file name extension of the format, without the dot.
func (f Format) Extension() string { return string(f) }

package export

import (
	"bytes"
	"encoding/json"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
)

// serialRows are date-times whose serials need 16 or more significant
// digits, day ends and starts, and random seconds from 1900-03-01 to 9999.
func serialRows(t *testing.T) []time.Time {
	t.Helper()
	out := []time.Time{
		ts(t, "2026-11-23 09:15:00"), // serial 46349.38541666667: was written 46349.3854166666
		ts(t, "2024-05-10 23:59:59"),
		ts(t, "2024-05-11 00:00:00"),
		ts(t, "1900-03-01 00:00:01"),
		ts(t, "9999-12-31 23:59:59"),
		ts(t, "2024-02-29 12:00:01"),
	}
	rng := rand.New(rand.NewPCG(42, 11))
	lo, hi := ts(t, "1900-03-01 00:00:00").Unix(), ts(t, "9999-12-31 23:59:59").Unix()
	for len(out) < 1000 {
		if len(out)%2 == 0 {
			// Recent years, where most worklogs are.
			out = append(out, time.Unix(ts(t, "2020-01-01 00:00:00").Unix()+rng.Int64N(10*365*86400), 0).UTC())
			continue
		}
		out = append(out, time.Unix(lo+rng.Int64N(hi-lo), 0).UTC())
	}
	return out
}

func serialRecordBytes(t *testing.T, f Format, rows []time.Time) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "date", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true}}, nil)
	mem := newMem(t)
	vals := make([][]any, len(rows))
	for i, r := range rows {
		vals[i] = []any{r}
	}
	rec := newRecord(t, mem, schema, vals)
	defer rec.Release()
	return encode(t, f, schema, EncoderOptions{}, rec)
}

var cellValue = regexp.MustCompile(`<c r="A(\d+)"[^>]*><v>([^<]*)</v></c>`)

// Every date cell's raw <v> is a decimal of at most 15 significant digits
// (so excelize wrote it unchanged) that any reader, truncating or rounding
// to the second, shows as the exact second.
func TestXLSXDateSerialsExact(t *testing.T) {
	rows := serialRows(t)
	sheet := unzipSheet(t, serialRecordBytes(t, FormatXLSX, rows), "xl/worksheets/sheet1.xml")
	cells := cellValue.FindAllSubmatch(sheet, -1)
	if len(cells) != len(rows) {
		t.Fatalf("%d date cells, want %d", len(cells), len(rows))
	}
	epoch := time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)
	for i, c := range cells {
		v := string(c[2])
		if digits := len(strings.TrimLeft(strings.ReplaceAll(v, ".", ""), "0")); digits > serialDigits {
			t.Errorf("row %d: <v>%s</v> has %d significant digits; excelize cuts at %d", i, v, digits, serialDigits)
		}
		r, ok := new(big.Rat).SetString(v)
		if !ok {
			t.Fatalf("row %d: <v>%s</v>", i, v)
		}
		secs := new(big.Rat).Mul(r, big.NewRat(86400, 1))
		want := big.NewRat(rows[i].Unix()-epoch.Unix(), 1)
		// Within [want, want + 0.001 s): the floor and the nearest second agree.
		upper := new(big.Rat).Add(want, big.NewRat(1, 1000))
		if secs.Cmp(want) < 0 || secs.Cmp(upper) >= 0 {
			f, _ := secs.Float64()
			t.Errorf("row %d: %s is <v>%s</v> = %.6f s after the epoch, want %s", i, rows[i].Format(time.DateTime), v, f, want.FloatString(0))
		}
	}
}

// LibreOffice, converting the workbook to CSV headless, shows every date
// cell as the JSON export writes it. Skipped without LibreOffice unless
// CI=true (.ci/run installs Debian's libreoffice-calc-nogui).
func TestXLSXDatesInLibreOffice(t *testing.T) {
	soffice, err := exec.LookPath("soffice")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs LibreOffice (Debian package libreoffice-calc-nogui), and CI=true: .ci/run installs it")
		}
		t.Skip("LibreOffice not installed (Debian package libreoffice-calc-nogui); CI installs it")
	}
	rows := serialRows(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "dates.xlsx")
	if err := os.WriteFile(in, serialRecordBytes(t, FormatXLSX, rows), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(soffice, "-env:UserInstallation=file://"+filepath.Join(dir, "profile"), "--headless",
		"--convert-to", "csv", "--outdir", dir, in)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("soffice: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "dates.csv"))
	if err != nil {
		t.Fatalf("LibreOffice wrote no CSV: %v", err)
	}
	var want []map[string]string
	if err := json.Unmarshal(serialRecordBytes(t, FormatJSON, rows), &want); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(bytes.ReplaceAll(got, []byte("\r"), nil)), "\n"), "\n")
	if len(lines) != len(want)+1 {
		t.Fatalf("LibreOffice CSV has %d lines, want %d", len(lines), len(want)+1)
	}
	wrong := 0
	for i, w := range want {
		if lines[i+1] != w["date"] {
			if wrong++; wrong <= 5 {
				t.Errorf("row %d: LibreOffice shows %q, the JSON export %q", i, lines[i+1], w["date"])
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d date cells differ", wrong, len(want))
	}
}

// A string longer than a cell holds keeps its beginning and ends with the
// documented mark; shorter strings are untouched.
func TestXLSXLongStringsMarkedAsCut(t *testing.T) {
	long := strings.Repeat("é", MaxXLSXCellChars+10)
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"short", "short"},
		{strings.Repeat("x", MaxXLSXCellChars), strings.Repeat("x", MaxXLSXCellChars)},
		{long, long[:2*(MaxXLSXCellChars-utf8.RuneCountInString(XLSXCutSuffix))] + XLSXCutSuffix},
	} {
		got := cutCell(tc.in)
		if got != tc.want || utf8.RuneCountInString(got) > MaxXLSXCellChars {
			t.Errorf("cutCell(%d characters) = %d characters ending %q", utf8.RuneCountInString(tc.in), utf8.RuneCountInString(got), got[max(0, len(got)-40):])
		}
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "rawData", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	mem := newMem(t)
	rec := newRecord(t, mem, schema, [][]any{{`{"body":"` + strings.Repeat("a", 40000) + `"}`}})
	defer rec.Release()
	_, sheets := readXLSX(t, encode(t, FormatXLSX, schema, EncoderOptions{}, rec))
	for _, rows := range sheets {
		cell := rows[1][0]
		if !strings.HasSuffix(cell, XLSXCutSuffix) || utf8.RuneCountInString(cell) != MaxXLSXCellChars {
			t.Errorf("cell of %d characters ending %q", utf8.RuneCountInString(cell), cell[max(0, len(cell)-40):])
		}
	}
}

package query

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"worklog/data"
)

// Keyset pages (SPEC §4). A page's cursor names the last row it returned by
// its place in the ordering: the value of orderByField and the row's
// userWorklogId, which breaks ties. The next request continues with
//
//	WHERE … AND (key > K OR (key = K AND id > I) OR key IS NULL)
//
// (< for a descending ordering; nulls sort last in both directions, so a
// null key is followed only by null keys with a greater, or smaller, id).
// DuckDB then reads from that place on instead of skipping offset rows, so
// a deep page costs what the first costs, and rows that an ingest commits
// between two pages appear when they sort after the cursor and never
// repeat or shift the rows that follow.
//
// The cursor is opaque to clients: a JSON payload (the key as text, the id,
// and a digest of the filters and ordering it belongs to) sealed with
// AES-256-GCM under a key derived from the server's cursor key, base64url.
// Sealed rather than only signed because the key is a row's value (a name,
// an e-mail address when ordering by them), and cursors travel in URLs,
// Link headers and the audit trail's query parameters, none of which may
// hold a row's content. A cursor that was altered fails to open; one that
// arrives with other filters or another ordering has another digest; both
// are refused with a ParamError naming `cursor`.

// Position is a place in a plan's ordering: the ordering key of one row and
// its userWorklogId.
type Position struct {
	// Null is set when the row's key is null (the rows that sort last).
	Null bool
	// Key is the row's value of the ordering field, typed like a Filter's
	// operands: int64, float64, string, time.Time (its day, at midnight,
	// under day precision) or []string. Nil when Null.
	Key any
	// ID is the row's userWorklogId.
	ID int64
}

// cursorVersion is the first field of every payload, so that a later format
// can refuse older cursors with a clear message.
const cursorVersion = 1

// cursorPayload is what a cursor carries, sealed.
type cursorPayload struct {
	V      int    `json:"v"`
	Null   bool   `json:"n,omitempty"`
	Key    string `json:"k,omitempty"`
	ID     int64  `json:"i"`
	Digest []byte `json:"d"`
}

// EncodeCursor returns the sealed cursor of pos in p's ordering, for the
// X-Next-Cursor header of the page that ends at pos.
func EncodeCursor(key []byte, p *Plan, pos Position) (string, error) {
	f, ok := data.Lookup(p.OrderBy)
	if !ok {
		return "", fmt.Errorf("encode cursor: unknown order field %q", p.OrderBy)
	}
	pl := cursorPayload{V: cursorVersion, Null: pos.Null, ID: pos.ID, Digest: p.digest()}
	if !pos.Null {
		text, err := keyText(f, pos.Key, p.dayPrecision(f))
		if err != nil {
			return "", fmt.Errorf("encode cursor: %w", err)
		}
		pl.Key = text
	}
	body, err := json.Marshal(pl)
	if err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	aead, err := cursorAEAD(key)
	if err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(body)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, body, cursorAD)), nil
}

// cursorAD binds a sealed cursor to its purpose: nothing else sealed with a
// key derived the same way can pass for a cursor.
var cursorAD = []byte("worklog cursor")

// cursorAEAD derives the cursor cipher from the server's cursor key, so the
// key file's text (any length of at least 16 bytes) can be used as it is.
func cursorAEAD(key []byte) (cipher.AEAD, error) {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("worklog cursor encryption key"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// openCursor returns the payload of a sealed cursor, or false.
func openCursor(key []byte, text string) ([]byte, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil {
		return nil, false
	}
	aead, err := cursorAEAD(key)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, false
	}
	body, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], cursorAD)
	return body, err == nil
}

// setCursor verifies a cursor parameter against the parsed plan and sets
// p.After.
func (p *Plan) setCursor(text string, withOffset bool, key []byte) error {
	switch {
	case len(key) == 0:
		return invalid(paramCursor, "cursors are not available here")
	case p.Limit == 0:
		return invalid(paramCursor, "a cursor continues a page: give limit too")
	case withOffset:
		return invalid(paramCursor, "give either cursor or offset, not both: the cursor already says where the page starts")
	}
	bad := invalid(paramCursor, "not a cursor of this server; use the X-Next-Cursor of the previous page as it was sent")
	body, ok := openCursor(key, text)
	if !ok {
		return bad
	}
	var pl cursorPayload
	if err := json.Unmarshal(body, &pl); err != nil || pl.V != cursorVersion {
		return bad
	}
	if !bytes.Equal(pl.Digest, p.digest()) {
		return invalid(paramCursor, "this cursor belongs to a request with other filters or another ordering; repeat that request's filters, orderByField and orderByDirection, or start again without cursor")
	}
	pos := Position{Null: pl.Null, ID: pl.ID}
	if !pl.Null {
		f, _ := data.Lookup(p.OrderBy)
		v, err := parseKeyText(f, pl.Key, p.dayPrecision(f))
		if err != nil {
			// Signed by us, so this is our own bug, not the client's.
			return invalid(paramCursor, "unreadable cursor: %v", err)
		}
		pos.Key = v
	}
	p.After = &pos
	return nil
}

// digestInput is what a cursor's digest covers: everything that decides
// which rows come in which order, and nothing that does not (limit, format).
type digestInput struct {
	OrderBy string
	Desc    bool
	Day     bool
	Filters []digestFilter
}

type digestFilter struct {
	Field, Comparator string
	Value, From, To   any
	ToEndOfDay        bool
	Values            []any
}

// digest is a hash of the plan's filters and ordering. Operands are the
// converted values, so two spellings of one filter (05 and 5, filters[3] and
// filters[0]) share a digest.
func (p *Plan) digest() []byte {
	in := digestInput{OrderBy: p.OrderBy, Desc: p.Desc, Day: p.DayPrecisionDate}
	for _, f := range p.Filters {
		in.Filters = append(in.Filters, digestFilter{Field: f.Field.Name, Comparator: f.Comparator,
			Value: f.Value, From: f.From, To: f.To, ToEndOfDay: f.ToEndOfDay, Values: f.Values})
	}
	b, err := json.Marshal(in)
	if err != nil {
		// Operands are numbers, strings, times and string lists: always
		// encodable.
		panic(fmt.Sprintf("query: digest: %v", err))
	}
	sum := sha256.Sum256(b)
	return sum[:16]
}

// keyText writes a key as the cursor carries it.
func keyText(f data.Field, v any, day bool) (string, error) {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case string:
		return x, nil
	case time.Time:
		return timeOperand(x, day), nil
	case []string:
		b, err := json.Marshal(x)
		return string(b), err
	}
	return "", fmt.Errorf("%s: key of type %T", f.Name, v)
}

// parseKeyText reads a key written by keyText, typed by the field's kind.
func parseKeyText(f data.Field, s string, day bool) (any, error) {
	switch f.Kind {
	case data.KindInt, data.KindFlag:
		return strconv.ParseInt(s, 10, 64)
	case data.KindFloat:
		return strconv.ParseFloat(s, 64)
	case data.KindTimestamp:
		layout := "2006-01-02 15:04:05.999999"
		if day {
			layout = data.DateLayout
		}
		return time.Parse(layout, s)
	case data.KindList:
		var l []string
		if err := json.Unmarshal([]byte(s), &l); err != nil || l == nil {
			return nil, fmt.Errorf("%s: list key %q", f.Name, s)
		}
		return l, nil
	}
	return s, nil
}

// PositionOf returns the position of row i of rec in p's ordering. rec is a
// batch as Records returns it (before any privacy transform): it must hold
// the ordering column and userWorklogId.
func (p *Plan) PositionOf(rec arrow.RecordBatch, i int) (Position, error) {
	f, ok := data.Lookup(p.OrderBy)
	if !ok {
		return Position{}, fmt.Errorf("position: unknown order field %q", p.OrderBy)
	}
	col, err := column(rec, f.Name)
	if err != nil {
		return Position{}, err
	}
	idCol, err := column(rec, data.KeyField)
	if err != nil {
		return Position{}, err
	}
	ids, ok := idCol.(*array.Int64)
	if !ok || ids.IsNull(i) {
		return Position{}, fmt.Errorf("position: %s is %s or null, want int64", data.KeyField, idCol.DataType())
	}
	pos := Position{ID: ids.Value(i)}
	if col.IsNull(i) {
		pos.Null = true
		return pos, nil
	}
	switch a := col.(type) {
	case *array.Int64:
		pos.Key = a.Value(i)
	case *array.Float64:
		x := a.Value(i)
		if math.IsNaN(x) {
			return Position{}, fmt.Errorf("position: %s is NaN", f.Name)
		}
		pos.Key = x
	case *array.String:
		pos.Key = a.Value(i)
	case *array.LargeString:
		pos.Key = a.Value(i)
	case *array.Timestamp:
		t := a.Value(i).ToTime(a.DataType().(*arrow.TimestampType).Unit)
		if p.dayPrecision(f) {
			t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		}
		pos.Key = t
	case *array.Date32:
		pos.Key = a.Value(i).ToTime()
	case *array.List:
		start, end := a.ValueOffsets(i)
		elems, ok := a.ListValues().(*array.String)
		if !ok {
			return Position{}, fmt.Errorf("position: %s is %s, want a list of strings", f.Name, col.DataType())
		}
		l := make([]string, 0, end-start)
		for j := start; j < end; j++ {
			l = append(l, elems.Value(int(j)))
		}
		pos.Key = l
	default:
		return Position{}, fmt.Errorf("position: %s has type %s", f.Name, col.DataType())
	}
	return pos, nil
}

// column returns rec's column named name.
func column(rec arrow.RecordBatch, name string) (arrow.Array, error) {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil, fmt.Errorf("position: batch has no column %s", name)
	}
	return rec.Column(idx[0]), nil
}

// after writes the keyset condition of p.After: the rows that sort after it.
func (p *Plan) after(s *sqlBuilder) {
	f, _ := data.Lookup(p.OrderBy)
	col, id := p.column(f), data.QuoteIdent(data.KeyField)
	op := " > "
	if p.Desc {
		op = " < "
	}
	a := p.After
	switch {
	case f.Name == data.KeyField:
		s.sql(id + op)
		s.arg(a.ID, false)
	case a.Null:
		// Only null keys follow a null key; among them the id decides.
		s.sql(col + " IS NULL AND " + id + op)
		s.arg(a.ID, false)
	default:
		day := p.dayPrecision(f)
		s.sql(col + op)
		s.arg(a.Key, day)
		s.sql(" OR (" + col + " = ")
		s.arg(a.Key, day)
		s.sql(" AND " + id + op)
		s.arg(a.ID, false)
		s.sql(") OR " + col + " IS NULL")
	}
}

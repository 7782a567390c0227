package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"worklog/data"
)

// PermViewEmail is the token permission that shows the e-mail field at level
// partiallyPseudonymized.
const PermViewEmail = "reporting.viewEmail"

// userIDField is the column whose value is the HMAC input of a pseudonym
// (SPEC §6). It is the one field name this package knows: not a list of what
// to hide (that comes from the catalogue's privacy classes) but the identity
// the pseudonym stands for. A test checks it against the catalogue.
const userIDField = "userId"

// ErrFieldNotAvailable is wrapped by FieldAllowed's errors for fields the
// level hides; the API answers them with 400, code field_not_available.
var ErrFieldNotAvailable = errors.New("field not available")

// action is what a policy does with one column.
type action int

const (
	// keep passes the column through unchanged (the input's array, retained).
	keep action = iota
	// omit drops the column.
	omit
	// toDate cuts a date-time to its date part (a date32 column).
	toDate
	// toPseudonym replaces the column by the user's pseudonym.
	toPseudonym
	// refuse marks a column the catalogue does not know: the privacy layer
	// fails closed, so it is never shown (dropped from the schema) and a
	// batch holding it is an error.
	refuse
)

// Option configures a Policy.
type Option func(*Policy)

// WithAllocator sets the allocator of the arrays Transform builds (the date
// and pseudonym columns). The default is memory.DefaultAllocator.
func WithAllocator(mem memory.Allocator) Option {
	return func(p *Policy) { p.mem = mem }
}

// Policy is the privacy policy of one request: a level, the token's
// permissions and the pseudonym key.
//
// A Policy is meant for one request (one export stream). Its methods are safe
// for concurrent use, but Transform and Pseudonym share a pseudonym cache
// behind a mutex, so concurrent streams should each have their own Policy.
// The key is never printed: String and GoString show only the level and
// whether the e-mail permission is held.
type Policy struct {
	level     Level
	viewEmail bool
	mem       memory.Allocator

	mu    sync.Mutex
	mac   hash.Hash              // HMAC-SHA256 under the key, reset per pseudonym
	slots *[1 << slotBits]idSlot // direct-mapped cache by userId, made on first use
	ids   map[int64]pseudonym    // cache by userId
	names map[string]pseudonym   // cache by name, for rows without userId
	num   [20]byte               // scratch for a userId in decimal
	sum   [sha256.Size]byte      // scratch for the HMAC sum
	last  *plan                  // plan for the last input schema seen
}

// NewPolicy returns the policy for a level, the permissions of the token and
// the pseudonym key (at least MinKeyLen bytes; copied, so the caller may
// clear its slice).
func NewPolicy(level Level, permissions []string, key []byte, opts ...Option) (*Policy, error) {
	if level.rank() < 0 {
		return nil, fmt.Errorf("new privacy policy: unknown level %q", level)
	}
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("new privacy policy: pseudonym key has %d bytes, need at least %d", len(key), MinKeyLen)
	}
	p := &Policy{
		level:     level,
		viewEmail: slices.Contains(permissions, PermViewEmail),
		mem:       memory.DefaultAllocator,
		mac:       hmac.New(sha256.New, slices.Clone(key)),
		ids:       make(map[int64]pseudonym),
		names:     make(map[string]pseudonym),
	}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Level returns the policy's level.
func (p *Policy) Level() Level { return p.level }

// String describes the policy without its key.
func (p *Policy) String() string {
	return fmt.Sprintf("privacy.Policy{level: %s, viewEmail: %t}", p.level, p.viewEmail)
}

// GoString is String, so that %#v cannot print the key either.
func (p *Policy) GoString() string { return p.String() }

// DayPrecisionDate reports whether date-times of the timestamp class are cut
// to their date part, so that filters and ordering on them must work on the
// date part too (true at level pseudonymized).
func (p *Policy) DayPrecisionDate() bool { return p.level == Pseudonymized }

// actionFor decides what the level does with a field, from its privacy class.
func (p *Policy) actionFor(f data.Field) action {
	switch f.Privacy {
	case data.PrivacyEmail:
		if p.level == None || (p.level == Partial && p.viewEmail) {
			return keep
		}
		return omit
	case data.PrivacyIdentifying:
		if p.level == Pseudonymized {
			return omit
		}
	case data.PrivacyTimestamp:
		if p.level == Pseudonymized {
			return toDate
		}
	case data.PrivacyName:
		if p.level == Pseudonymized {
			return toPseudonym
		}
	}
	return keep
}

// Treatment is what a policy does with one field's values, as a client
// needs to know it to present the output (the API's catalogue route).
type Treatment string

// The treatments, one per column action.
const (
	// TreatShown values pass unchanged.
	TreatShown Treatment = "shown"
	// TreatOmitted fields are absent from the output.
	TreatOmitted Treatment = "omitted"
	// TreatDateOnly date-times are cut to their date part, YYYY-MM-DD.
	TreatDateOnly Treatment = "dateOnly"
	// TreatPseudonym names are replaced by the stable pseudonym Agent-<10 hex>.
	TreatPseudonym Treatment = "pseudonym"
)

// Treatment returns what the policy does with a catalogue field's values;
// it is the same decision Schema and Transform apply.
func (p *Policy) Treatment(f data.Field) Treatment {
	switch p.actionFor(f) {
	case omit:
		return TreatOmitted
	case toDate:
		return TreatDateOnly
	case toPseudonym:
		return TreatPseudonym
	}
	return TreatShown
}

// openness ranks a treatment by how much of a value it reveals.
func openness(t Treatment) int {
	switch t {
	case TreatShown:
		return 2
	case TreatDateOnly, TreatPseudonym:
		return 1
	}
	return 0
}

// Covers reports whether p reveals at least what q reveals, field by
// field: a file made under q may then be handed to a holder of p. A file
// made at a wider level or with more permissions than the caller now has
// is not covered (SPEC §6: the level in force at download applies).
func (p *Policy) Covers(q *Policy) bool {
	for _, f := range data.Fields() {
		if openness(q.Treatment(f)) > openness(p.Treatment(f)) {
			return false
		}
	}
	return true
}

// Unread returns the catalogue fields whose values never reach the output
// at the policy's level, in catalogue order: the omitted fields, except
// userId, which keys the name pseudonyms. The query layer need not read
// them at all (rawData alone is most of a row's bytes).
func (p *Policy) Unread() []string {
	var out []string
	for _, f := range data.Fields() {
		if p.actionFor(f) == omit && f.Name != userIDField {
			out = append(out, f.Name)
		}
	}
	return out
}

// FieldAllowed returns nil if the field may be used in filters and
// orderByField, else an error saying why, e.g. `field "email" is not
// available at privacy level pseudonymized`, for which errors.Is reports
// ErrFieldNotAvailable. Fields the level omits or pseudonymizes are refused:
// a filter must never reveal what the output hides (e.g. counting a person's
// rows by e-mail). Date-times cut to their date stay allowed, at day
// precision (see DayPrecisionDate). Names outside the catalogue are refused
// too. It has the signature query.Options.FieldAllowed expects.
func (p *Policy) FieldAllowed(field string) error {
	f, ok := data.Lookup(field)
	if !ok {
		return notAvailable(fmt.Sprintf("unknown field %q", field))
	}
	switch p.actionFor(f) {
	case omit, toPseudonym:
		if f.Privacy == data.PrivacyEmail && p.level == Partial {
			return notAvailable(fmt.Sprintf("field %q is not available at privacy level %s without permission %s",
				field, p.level, PermViewEmail))
		}
		return notAvailable(fmt.Sprintf("field %q is not available at privacy level %s", field, p.level))
	}
	return nil
}

// notAvailable is FieldAllowed's error: its message is the reason alone, fit
// for an API response, and it matches ErrFieldNotAvailable.
type notAvailable string

// Error returns the reason.
func (e notAvailable) Error() string { return string(e) }

// Unwrap makes errors.Is(err, ErrFieldNotAvailable) true.
func (e notAvailable) Unwrap() error { return ErrFieldNotAvailable }

// plan is the transformation of one input schema.
type plan struct {
	in, out  *arrow.Schema
	src      []int    // for each output column, its input column
	act      []action // for each output column, what to do
	userCol  int      // input column of userIDField, or -1
	identity bool     // output equals input
	unknown  []string // input columns outside the catalogue
}

// Schema returns the output schema Transform produces for batches of the
// input schema: omitted columns dropped, date-times cut to date32, names as
// utf8; columns outside the catalogue are left out (Transform refuses
// batches that hold them: the privacy layer fails closed).
func (p *Policy) Schema(in *arrow.Schema) *arrow.Schema {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.planFor(in).out
}

// planFor returns the plan for an input schema, reusing the last one when the
// schema is the same (every batch of a stream has the same schema). The
// caller holds p.mu.
func (p *Policy) planFor(in *arrow.Schema) *plan {
	if p.last != nil && (p.last.in == in || p.last.in.Equal(in)) {
		return p.last
	}
	pl := &plan{in: in, userCol: -1, identity: true}
	fields := make([]arrow.Field, 0, in.NumFields())
	for i, f := range in.Fields() {
		if f.Name == userIDField && pl.userCol < 0 {
			pl.userCol = i
		}
		act := refuse
		if cf, ok := data.Lookup(f.Name); ok {
			act = p.actionFor(cf)
		} else if f.HasMetadata() {
			act = p.derivedAction(f.Metadata)
		}
		switch act {
		case refuse:
			pl.unknown = append(pl.unknown, f.Name)
			pl.identity = false
			continue
		case omit:
			pl.identity = false
			continue
		case toDate:
			if f.Type.ID() != arrow.DATE32 {
				pl.identity = false
			}
			f.Type = arrow.FixedWidthTypes.Date32
		case toPseudonym:
			pl.identity = false
			f.Type = arrow.BinaryTypes.String
		}
		fields = append(fields, f)
		pl.src = append(pl.src, i)
		pl.act = append(pl.act, act)
	}
	if pl.identity {
		pl.out = in
	} else {
		md := in.Metadata()
		pl.out = arrow.NewSchema(fields, &md)
	}
	p.last = pl
	return pl
}

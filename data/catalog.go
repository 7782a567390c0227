// Package data owns the worklog schema and the Parquet store.
//
// The catalogue in this file is the single source of truth for the 35 worklog
// fields: their order, store type, description (from the reference API),
// privacy class and whether they may be filtered on, ordered by, grouped by
// or measured. Ingest validation, the query planner, the privacy policy, the
// encoders and the OpenAPI document all read it; no other list of fields
// exists. The package also holds the one list of accepted date-time forms
// (ParseDateTime) and the store (store.go).
//
// Every other worklog package imports data, so data imports none of them:
// only the standard library, flock, parquet-go and internal/fsutil; never
// Arrow, DuckDB or anything of HTTP.
package data

import (
	"fmt"
	"slices"
)

// Kind is the logical type of a field. It decides how ingest validates a
// value, how the planner converts filter operands, and how the store types
// the column.
type Kind int

// The field kinds. Every kind maps to one DuckDB/Parquet column type
// (see Kind.SQLType).
const (
	// KindTimestamp is a naive wall-clock date-time, written "YYYY-MM-DD HH:MM:SS".
	KindTimestamp Kind = iota
	// KindInt is a signed 64-bit integer.
	KindInt
	// KindFlag is an integer that is 0 or 1.
	KindFlag
	// KindFloat is a 64-bit floating point number.
	KindFloat
	// KindString is free text.
	KindString
	// KindEnum is text restricted to Field.Enum.
	KindEnum
	// KindList is a list of strings, written as a JSON-array string
	// `["a", "b"]` in exports.
	KindList
)

// String names the kind, as used in error messages ("expected integer").
func (k Kind) String() string {
	switch k {
	case KindTimestamp:
		return "date-time"
	case KindInt, KindFlag:
		return "integer"
	case KindFloat:
		return "number"
	case KindString, KindEnum:
		return "string"
	case KindList:
		return "list of strings"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// SQLType is the DuckDB column type the store uses for the kind.
func (k Kind) SQLType() string {
	switch k {
	case KindTimestamp:
		return "TIMESTAMP"
	case KindInt, KindFlag:
		return "BIGINT"
	case KindFloat:
		return "DOUBLE"
	case KindList:
		return "VARCHAR[]"
	default:
		return "VARCHAR"
	}
}

// PrivacyClass says how the privacy levels treat a field (SPEC §6). The
// privacy package derives its whole policy from these classes.
type PrivacyClass int

// The privacy classes.
const (
	// PrivacyPublic fields are shown at every level.
	PrivacyPublic PrivacyClass = iota
	// PrivacyEmail is the agent's e-mail: shown at level none, at
	// partiallyPseudonymized only with permission reporting.viewEmail,
	// omitted at pseudonymized.
	PrivacyEmail
	// PrivacyIdentifying fields are omitted at level pseudonymized.
	PrivacyIdentifying
	// PrivacyTimestamp is cut to its date part at level pseudonymized.
	PrivacyTimestamp
	// PrivacyName is replaced by a keyed pseudonym at level pseudonymized.
	PrivacyName
)

// Field describes one worklog field.
type Field struct {
	// Name is the field's key in every format and its column name in the store.
	Name string
	// Kind is its logical type.
	Kind Kind
	// Required fields must be present and non-null in every ingested record.
	Required bool
	// Enum lists the allowed values of a KindEnum field.
	Enum []string
	// Min and Max bound a KindInt field when HasRange is set.
	Min, Max int64
	// HasRange says whether Min and Max apply.
	HasRange bool
	// Description is the reference API's description of the field.
	Description string
	// Privacy is the field's privacy class.
	Privacy PrivacyClass
	// Filterable fields may be used in filters[i][key] (SPEC §4: all 35;
	// the privacy policy narrows this per request).
	Filterable bool
	// Sortable fields may be used in orderByField (SPEC §4: all 35).
	Sortable bool
	// Groupable fields may be analytics dimensions, groupBy[] (SPEC §10): by
	// value; a KindList field by element; a KindTimestamp field (date) only
	// by a time bucket such as date:week.
	Groupable bool
	// Numeric fields are quantities that sum, avg, min, max and the
	// percentiles apply to (SPEC §10). Identifiers are integers but not
	// quantities. The 0/1 flags, which rate(F) applies to, are the fields
	// of KindFlag.
	Numeric bool
	// Unit is the unit of a Numeric field's values, UnitSeconds or "" (a
	// plain number), so that clients can show handling times as m:ss.
	Unit string
}

// UnitSeconds is the Unit of the fields that measure time in seconds.
const UnitSeconds = "seconds"

// Actions are the allowed values of the action field.
var actions = []string{"closeAction", "readAction", "statusAction", "writeAction", "autoProcessAction"}

// channels are the allowed values of the channel field.
var channels = []string{"email", "portal", "phone", "system", "chat", "walkIn", "letter"}

// catalogue is the ordered list of the 35 fields. It is unexported and never
// modified; Fields and Lookup return copies. Every fact about a field is
// declared here, in its entry.
var catalogue = []Field{
	{Name: "date", Kind: KindTimestamp, Required: true, Privacy: PrivacyTimestamp, Filterable: true, Sortable: true, Groupable: true,
		Description: "Timestamp of the worklog entry. When reportingPrivacyLevel is pseudonymized, only the date portion is returned (time stripped)."},
	{Name: "name", Kind: KindString, Privacy: PrivacyName, Filterable: true, Sortable: true, Groupable: true,
		Description: "Name of the user who performed the action"},
	{Name: "ticketId", Kind: KindInt, Privacy: PrivacyIdentifying, Filterable: true, Sortable: true,
		Description: "ID of related ticket. Omitted when reportingPrivacyLevel is pseudonymized."},
	{Name: "conversationId", Kind: KindInt, Privacy: PrivacyIdentifying, Filterable: true, Sortable: true,
		Description: "ID of related conversation. Omitted when reportingPrivacyLevel is pseudonymized."},
	{Name: "userId", Kind: KindInt, Privacy: PrivacyIdentifying, Filterable: true, Sortable: true,
		Description: "ID of the user. Omitted when reportingPrivacyLevel is pseudonymized."},
	{Name: "action", Kind: KindEnum, Required: true, Enum: actions, Filterable: true, Sortable: true, Groupable: true,
		Description: "Type of action performed"},
	{Name: "duration", Kind: KindInt, Filterable: true, Sortable: true, Numeric: true, Unit: UnitSeconds,
		Description: "Duration of the action in seconds"},
	{Name: "durationAfterWork", Kind: KindInt, Filterable: true, Sortable: true, Numeric: true, Unit: UnitSeconds,
		Description: "Duration of after-work in seconds"},
	{Name: "reOpened", Kind: KindFlag, Filterable: true, Sortable: true, Groupable: true,
		Description: "Whether the ticket was reopened (0 or 1)"},
	{Name: "status", Kind: KindString, Filterable: true, Sortable: true, Groupable: true,
		Description: "Ticket status at time of action"},
	{Name: "aiAgent", Kind: KindString, Filterable: true, Sortable: true, Groupable: true,
		Description: "Name of the AI agent involved"},
	{Name: "topic", Kind: KindString, Filterable: true, Sortable: true, Groupable: true,
		Description: "Primary topic (top-level tag name)"},
	{Name: "subTopic", Kind: KindString, Filterable: true, Sortable: true, Groupable: true,
		Description: "Sub-topic (child tag name)"},
	{Name: "allTags", Kind: KindString, Filterable: true, Sortable: true,
		Description: "Comma-separated list of all assigned tag names"},
	{Name: "tags", Kind: KindList, Filterable: true, Sortable: true, Groupable: true,
		Description: "JSON array of assigned tag names"},
	{Name: "channel", Kind: KindEnum, Enum: channels, Filterable: true, Sortable: true, Groupable: true,
		Description: "Communication channel"},
	{Name: "department", Kind: KindString, Filterable: true, Sortable: true, Groupable: true,
		Description: "Department handling the ticket"},
	{Name: "teams", Kind: KindList, Filterable: true, Sortable: true, Groupable: true,
		Description: "JSON array of team names the user belongs to"},
	{Name: "email", Kind: KindString, Privacy: PrivacyEmail, Filterable: true, Sortable: true,
		Description: "Email of the user. Omitted when reportingPrivacyLevel is pseudonymized or partiallyPseudonymized (without permission)."},
	{Name: "rawData", Kind: KindString, Privacy: PrivacyIdentifying, Filterable: true, Sortable: true,
		Description: "Full ticket payload as JSON string. Omitted when reportingPrivacyLevel is pseudonymized."},
	{Name: "aiAutomationLevel", Kind: KindInt, Min: 0, Max: 5, HasRange: true, Filterable: true, Sortable: true, Groupable: true, Numeric: true,
		Description: "AI automation level (0–5)"},
	{Name: "customerIdentifiedCorrectly", Kind: KindFlag, Filterable: true, Sortable: true, Groupable: true,
		Description: "Whether the customer was correctly identified (0 or 1)"},
	{Name: "tagsIdentifiedCorrectly", Kind: KindFlag, Filterable: true, Sortable: true, Groupable: true,
		Description: "Whether tags were correctly identified (0 or 1)"},
	{Name: "textAssistanceAccuracy", Kind: KindFloat, Filterable: true, Sortable: true, Numeric: true,
		Description: "Accuracy score of text assistance"},
	{Name: "aiAgentsUsed", Kind: KindList, Filterable: true, Sortable: true, Groupable: true,
		Description: "JSON array of AI agent identifiers used during processing"},
	{Name: "skippedTicket", Kind: KindFlag, Filterable: true, Sortable: true, Groupable: true,
		Description: "Whether the ticket was skipped (0 or 1)"},
	{Name: "netSecondsClosedAfterSLA", Kind: KindInt, Filterable: true, Sortable: true, Numeric: true, Unit: UnitSeconds,
		Description: "Net seconds the ticket was closed after the SLA deadline (excludes pending time; negative = closed before SLA)"},
	{Name: "closingDateForSLA", Kind: KindTimestamp, Privacy: PrivacyTimestamp, Filterable: true, Sortable: true,
		Description: "Effective closing date used for SLA calculation. When reportingPrivacyLevel is pseudonymized, only the date portion is returned (it often reveals the time of the event)."},
	{Name: "statusActionDetail", Kind: KindString, Filterable: true, Sortable: true, Groupable: true,
		Description: "Detail of the status action (e.g. sub-status reason)"},
	{Name: "pendingDueBy", Kind: KindTimestamp, Privacy: PrivacyTimestamp, Filterable: true, Sortable: true,
		Description: "Due-by timestamp while ticket was in pending state. When reportingPrivacyLevel is pseudonymized, only the date portion is returned (it often reveals the time of the event)."},
	{Name: "pendingSeconds", Kind: KindInt, Filterable: true, Sortable: true, Numeric: true, Unit: UnitSeconds,
		Description: "Total seconds the ticket spent in pending state"},
	{Name: "netPendingSeconds", Kind: KindInt, Filterable: true, Sortable: true, Numeric: true, Unit: UnitSeconds,
		Description: "Net seconds in pending state (adjusted)"},
	{Name: "firstPendingAt", Kind: KindTimestamp, Privacy: PrivacyTimestamp, Filterable: true, Sortable: true,
		Description: "Timestamp when ticket first entered pending state. When reportingPrivacyLevel is pseudonymized, only the date portion is returned (it often reveals the time of the event)."},
	{Name: "userWorklogId", Kind: KindInt, Required: true, Filterable: true, Sortable: true,
		Description: "ID of the user worklog entry"},
	{Name: "timesSetToOpen", Kind: KindInt, Filterable: true, Sortable: true, Numeric: true,
		Description: "Number of times the ticket was set back to open status"},
}

// byName indexes the catalogue by field name.
var byName = func() map[string]int {
	m := make(map[string]int, len(catalogue))
	for i, f := range catalogue {
		m[f.Name] = i
	}
	return m
}()

// KeyField is the unique key of an event.
const KeyField = "userWorklogId"

// DateField is the field the store partitions and sorts by.
const DateField = "date"

// Fields returns the 35 fields in export order. The returned slice and the
// fields' Enum slices are copies and may be modified by the caller.
func Fields() []Field {
	out := make([]Field, len(catalogue))
	for i, f := range catalogue {
		out[i] = f.clone()
	}
	return out
}

// clone returns f with its own copy of Enum.
func (f Field) clone() Field {
	f.Enum = slices.Clone(f.Enum)
	return f
}

// FieldCount is the number of fields in the catalogue.
func FieldCount() int { return len(catalogue) }

// Lookup returns the field with the given name. Names are case-sensitive.
// The field's Enum is a copy.
func Lookup(name string) (Field, bool) {
	i, ok := byName[name]
	if !ok {
		return Field{}, false
	}
	return catalogue[i].clone(), true
}

// Index returns the position of the named field in export order, or -1.
func Index(name string) int {
	i, ok := byName[name]
	if !ok {
		return -1
	}
	return i
}

// AllowsEnum reports whether v is an allowed value of a KindEnum field.
func (f Field) AllowsEnum(v string) bool { return slices.Contains(f.Enum, v) }

// Arrow field metadata keys that mark a column derived from catalogue fields
// (an analytics result column such as "date:week" or "avg(duration)"), so
// that the privacy layer, which refuses every column outside the catalogue,
// can decide such a column by the field it reads.
const (
	// MetaDerivedFrom names the catalogue field a derived column reads; ""
	// for a count of events or of distinct identifiers.
	MetaDerivedFrom = "worklog.derivedFrom"
	// MetaBucket is the time bucket of a dimension over a date-time field
	// ("hour", "day", "week", "month", "quarter", "year").
	MetaBucket = "worklog.bucket"
	// MetaMeasure is the measure kind of a measure column ("count", "avg",
	// ...); dimensions have none.
	MetaMeasure = "worklog.measure"
)

package api

import (
	"net/http"

	"worklog/data"
	"worklog/export"
	"worklog/privacy"
	"worklog/query"

	"github.com/labstack/echo/v4"
)

// CatalogPath describes the export's fields as the caller's token sees
// them: the privacy level in force, which fields appear in the output and
// how, which may be filtered and ordered on, and with which comparators.
// The web page builds its filter builder and its table from it alone.
const CatalogPath = APIBase + "/catalog/reporting_worklog"

// Catalog is the JSON of CatalogPath.
type Catalog struct {
	// PrivacyLevel is the level in force for this token: the server's,
	// raised by the token's claim.
	PrivacyLevel privacy.Level `json:"privacyLevel"`
	// OmittedFields counts the fields the level leaves out of the output.
	// They are not listed: a client shows what it gets, and the names of
	// hidden fields are none of its business.
	OmittedFields int `json:"omittedFields"`
	// Fields are the fields present in the output, in export order.
	Fields []CatalogField `json:"fields"`
	// Comparators are the filter comparators with their operands.
	Comparators []CatalogComparator `json:"comparators"`
	// Formats are the export formats.
	Formats []export.Format `json:"formats"`
	// MaxLimit is the largest page (limit).
	MaxLimit int `json:"maxLimit"`
	// SyncLimits are, per format, the largest export (no limit) answered
	// synchronously; a larger one becomes a background job.
	SyncLimits map[export.Format]int64 `json:"syncLimits"`
	// OrderByField and OrderByDirection are the default ordering.
	OrderByField     string `json:"orderByField"`
	OrderByDirection string `json:"orderByDirection"`
}

// CatalogField is one field of the output.
type CatalogField struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
	// Nullable fields may be null (every field but the required ones).
	Nullable bool     `json:"nullable"`
	Enum     []string `json:"enum,omitempty"`
	Minimum  *int64   `json:"minimum,omitempty"`
	Maximum  *int64   `json:"maximum,omitempty"`
	// Treatment is shown, dateOnly or pseudonym (omitted fields are not listed).
	Treatment privacy.Treatment `json:"treatment"`
	// Filterable and Sortable say whether filters[i][key] and orderByField
	// accept the field at this level.
	Filterable bool `json:"filterable"`
	Sortable   bool `json:"sortable"`
	// Comparators are the comparators that apply to the field's kind (empty
	// when it is not filterable).
	Comparators []string `json:"comparators"`
}

// CatalogComparator is one comparator and its operand sub-keys.
type CatalogComparator struct {
	Name     string   `json:"name"`
	Operands []string `json:"operands"`
}

// kindNames are the catalogue kinds as the catalogue route names them:
// finer than JSON types, so a client can pick a fitting control.
var kindNames = map[data.Kind]string{
	data.KindTimestamp: "dateTime",
	data.KindInt:       "integer",
	data.KindFlag:      "flag",
	data.KindFloat:     "number",
	data.KindString:    "string",
	data.KindEnum:      "enum",
	data.KindList:      "list",
}

func (s *Server) handleCatalog(c echo.Context) error {
	pol, err := s.policyFor(claimsOf(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.catalog(pol))
}

// catalog builds the catalogue under a policy, from the data catalogue, the
// policy and query's comparators.
func (s *Server) catalog(pol *privacy.Policy) Catalog {
	cat := Catalog{
		PrivacyLevel:     pol.Level(),
		Fields:           []CatalogField{},
		Formats:          export.Formats(),
		MaxLimit:         query.MaxLimit,
		SyncLimits:       map[export.Format]int64{},
		OrderByField:     data.DateField,
		OrderByDirection: "desc",
	}
	for _, f := range export.Formats() {
		cat.SyncLimits[f] = s.syncLimit(f)
	}
	docs := query.ComparatorDocs()
	for _, d := range docs {
		ops := d.Operands
		if ops == nil {
			ops = []string{}
		}
		cat.Comparators = append(cat.Comparators, CatalogComparator{Name: d.Name, Operands: ops})
	}
	for _, f := range data.Fields() {
		t := pol.Treatment(f)
		if t == privacy.TreatOmitted {
			cat.OmittedFields++
			continue
		}
		allowed := pol.FieldAllowed(f.Name) == nil
		cf := CatalogField{Name: f.Name, Kind: kindNames[f.Kind], Description: f.Description, Nullable: !f.Required,
			Enum: f.Enum, Treatment: t, Filterable: f.Filterable && allowed, Sortable: f.Sortable && allowed,
			Comparators: []string{}}
		if f.HasRange {
			lo, hi := f.Min, f.Max
			cf.Minimum, cf.Maximum = &lo, &hi
		}
		if cf.Filterable {
			for _, d := range docs {
				if d.Applies(f.Kind) {
					cf.Comparators = append(cf.Comparators, d.Name)
				}
			}
		}
		cat.Fields = append(cat.Fields, cf)
	}
	return cat
}

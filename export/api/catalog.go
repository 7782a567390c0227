package api

import (
	"net/http"
	"net/url"
	"strings"

	"worklog/data"
	"worklog/export"
	"worklog/privacy"
	"worklog/query"

	"github.com/labstack/echo/v4"
)

// CatalogPath describes the export's fields as the caller's token sees
// them: the privacy level in force, which fields appear in the output and
// how, which may be filtered and ordered on, and with which comparators;
// and the analytics endpoint's dimensions and measures with their units.
// The web page builds its filter builder, its table and its analytics
// choices from it alone.
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
	// Analytics describes the analytics endpoint for this token.
	Analytics *CatalogAnalytics `json:"analytics"`
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
	cat.Analytics = s.catalogAnalytics(pol)
	return cat
}

// CatalogAnalytics describes the analytics endpoint (SPEC §10) as this
// token may use it: every entry is one the endpoint accepts at the token's
// privacy level and the server's small-group setting.
type CatalogAnalytics struct {
	// Path is the endpoint.
	Path string `json:"path"`
	// TimeBuckets are the groupBy entries of date by time bucket
	// ("date:week"), finest first.
	TimeBuckets []string `json:"timeBuckets"`
	// Dimensions are the other groupBy entries, in catalogue order.
	Dimensions []CatalogDimension `json:"dimensions"`
	// Measures are the measures entries, written as a request writes them
	// ("avg(duration)").
	Measures []CatalogMeasure `json:"measures"`
	// MaxDimensions, MaxMeasures and MaxLimit bound a request.
	MaxDimensions int `json:"maxDimensions"`
	MaxMeasures   int `json:"maxMeasures"`
	MaxLimit      int `json:"maxLimit"`
}

// CatalogDimension is one groupBy entry.
type CatalogDimension struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
}

// CatalogMeasure is one measures entry and the unit of its values:
// "count", "ratio" (0–1, shown as %), "seconds", or "" for a plain number.
type CatalogMeasure struct {
	Name        string `json:"name"`
	Unit        string `json:"unit"`
	Description string `json:"description"`
}

// catalogAnalytics lists what the analytics endpoint accepts under a
// policy. It asks the endpoint's own parser about each dimension and
// measure, so the page offers exactly what a request may use.
func (s *Server) catalogAnalytics(pol *privacy.Policy) *CatalogAnalytics {
	opts := s.aggregateOptions(pol, s.cfg.DefaultFormat)
	accepts := func(v url.Values) bool {
		_, err := query.ParseAggregate(v, opts)
		return err == nil
	}
	a := &CatalogAnalytics{Path: AnalyticsPath, TimeBuckets: []string{}, Dimensions: []CatalogDimension{}, Measures: []CatalogMeasure{},
		MaxDimensions: query.MaxDimensions, MaxMeasures: query.MaxMeasures, MaxLimit: query.MaxGroupLimit}
	for _, d := range query.DimensionNames() {
		if !accepts(url.Values{"groupBy[]": {d}, "measures[]": {string(query.MeasureCount)}}) {
			continue
		}
		name, bucket, _ := strings.Cut(d, ":")
		f, _ := data.Lookup(name)
		if bucket != "" {
			a.TimeBuckets = append(a.TimeBuckets, d)
			continue
		}
		a.Dimensions = append(a.Dimensions, CatalogDimension{Name: d, Kind: kindNames[f.Kind], Description: f.Description})
	}
	for _, m := range query.MeasureDocs() {
		if len(m.Fields) == 0 {
			if accepts(url.Values{"measures[]": {string(m.Kind)}}) {
				a.Measures = append(a.Measures, CatalogMeasure{Name: string(m.Kind), Unit: measureUnit(m.Kind, data.Field{}), Description: m.Description})
			}
			continue
		}
		for _, fname := range m.Fields {
			name := string(m.Kind) + "(" + fname + ")"
			if !accepts(url.Values{"measures[]": {name}}) {
				continue
			}
			f, _ := data.Lookup(fname)
			a.Measures = append(a.Measures, CatalogMeasure{Name: name, Unit: measureUnit(m.Kind, f),
				Description: strings.ReplaceAll(m.Description, "F", fname)})
		}
	}
	return a
}

// measureUnit is the unit of a measure's values: counts, ratios (rates),
// or the unit of the field it reads (sum, avg, min, max, percentiles).
func measureUnit(k query.MeasureKind, f data.Field) string {
	switch k {
	case query.MeasureCount, query.MeasureTickets, query.MeasureAgents:
		return "count"
	case query.MeasureRate, query.MeasureSLAMetRate:
		return "ratio"
	}
	return f.Unit
}

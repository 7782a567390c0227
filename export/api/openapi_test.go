package api

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"worklog/data"
	"worklog/export"
	"worklog/export/api/auth"
	"worklog/privacy"
	"worklog/query"

	"github.com/getkin/kin-openapi/openapi3"
)

// loadOpenAPI fetches the served document and loads it with kin-openapi.
func loadOpenAPI(t *testing.T, env *testEnv) *openapi3.T {
	t.Helper()
	resp, err := http.Get(env.url + OpenAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("openapi.json: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return doc
}

func TestOpenAPIValidates(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil)
	doc := loadOpenAPI(t, env)
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s == nil || s.Value.Scheme != "bearer" || s.Value.BearerFormat != "JWT" {
		t.Errorf("bearer JWT scheme missing: %+v", s)
	}
}

// echoToOpenAPI turns an Echo path template (/jobs/:id) into OpenAPI's (/jobs/{id}).
var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

func TestOpenAPICoversRoutes(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil)
	doc := loadOpenAPI(t, env)
	srv, err := NewServer(Config{Verifier: mustVerifier(t), PrivacyLevel: privacy.None, PseudonymKey: env.key, Store: env.store}, env.engine)
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, r := range srv.Routes() {
		if r.Method == echoRouteNotFound {
			continue
		}
		p := echoParam.ReplaceAllString(r.Path, "{$1}")
		key := r.Method + " " + p
		registered[key] = true
		item := doc.Paths.Find(p)
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s is not in the OpenAPI document", key)
		}
	}
	for p, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !registered[method+" "+p] {
				t.Errorf("the document lists %s %s, which the server does not serve", method, p)
			}
		}
	}
}

// echoRouteNotFound is the pseudo-method Echo lists for its not-found routes.
const echoRouteNotFound = "echo_route_not_found"

func mustVerifier(t *testing.T) *auth.Verifier {
	v, err := auth.NewHMACVerifier(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenAPICoversCatalogue(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil)
	doc := loadOpenAPI(t, env)
	event := doc.Components.Schemas["Event"].Value
	ingestEvent := doc.Components.Schemas["IngestEvent"].Value
	op := doc.Paths.Find(ExportPath).Get
	orderBy := op.Parameters.GetByInAndName("query", "orderByField").Schema.Value
	filters := op.Parameters.GetByInAndName("query", "filters")
	if filters.Style != "deepObject" {
		t.Errorf("filters style %q, want deepObject", filters.Style)
	}
	filterKey := filters.Schema.Value.AdditionalProperties.Schema.Value.Properties["key"].Value

	var names []string
	for _, f := range data.Fields() {
		names = append(names, f.Name)
		p := event.Properties[f.Name]
		if p == nil || ingestEvent.Properties[f.Name] == nil {
			t.Errorf("field %s missing from the event schemas", f.Name)
			continue
		}
		if p.Value.Description != f.Description || f.Description == "" {
			t.Errorf("%s: description %q, want the catalogue's %q", f.Name, p.Value.Description, f.Description)
		}
		if f.Required != !p.Value.Type.Includes("null") && f.Kind != data.KindList {
			t.Errorf("%s: type %v, required %v", f.Name, p.Value.Type, f.Required)
		}
		for _, v := range f.Enum {
			if !slices.Contains(p.Value.Enum, any(v)) {
				t.Errorf("%s: enum %v lacks %s", f.Name, p.Value.Enum, v)
			}
		}
		if f.Required && !slices.Contains(ingestEvent.Required, f.Name) {
			t.Errorf("%s is required in ingest but not in the schema", f.Name)
		}
		if !slices.Contains(orderBy.Enum, any(f.Name)) || !slices.Contains(filterKey.Enum, any(f.Name)) {
			t.Errorf("%s missing from orderByField or filters key enums", f.Name)
		}
	}
	if len(event.Properties) != len(names) || len(orderBy.Enum) != len(names) {
		t.Errorf("%d properties, %d orderByField values, want %d", len(event.Properties), len(orderBy.Enum), len(names))
	}
	limit := op.Parameters.GetByInAndName("query", "limit").Schema.Value
	if limit.Min == nil || *limit.Min != 1 || limit.Max == nil || *limit.Max != 1000 {
		t.Errorf("limit bounds %v..%v", limit.Min, limit.Max)
	}
	// The reference's example event validates against the event schema.
	ex := decodeObject(t, []byte(`{"date": "2024-05-10 14:52:37", "name": "Jane Doe", "ticketId": 233, "conversationId": null, "action": "writeAction", "tags": "[\"Billing\"]", "channel": "email", "reOpened": 0, "textAssistanceAccuracy": null, "userWorklogId": 1}`))
	values := map[string]any{}
	for k, v := range ex.values {
		values[k] = jsonNumberToFloat(v)
	}
	if err := event.VisitJSON(values); err != nil {
		t.Errorf("reference event does not validate: %v", err)
	}
	values["channel"] = "fax"
	if err := event.VisitJSON(values); err == nil {
		t.Error("an event with channel fax validates")
	}
}

func jsonNumberToFloat(v any) any {
	if n, ok := v.(interface{ Float64() (float64, error) }); ok {
		f, _ := n.Float64()
		return f
	}
	return v
}

// TestOpenAPICoversFormatsAndPages checks that the document reads the one
// format list (enum and response media types), names every top-level
// parameter the export parser accepts, and the page headers.
func TestOpenAPICoversFormatsAndPages(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil)
	doc := loadOpenAPI(t, env)
	op := doc.Paths.Find(ExportPath).Get
	for _, p := range query.Params() {
		if op.Parameters.GetByInAndName("query", p) == nil {
			t.Errorf("parameter %s undocumented", p)
		}
	}
	enum := op.Parameters.GetByInAndName("query", "format").Schema.Value.Enum
	ok := op.Responses.Status(200).Value
	for _, f := range export.Formats() {
		if !slices.Contains(enum, any(string(f))) {
			t.Errorf("format enum %v lacks %s", enum, f)
		}
		if ok.Content.Get(f.MediaType()) == nil {
			t.Errorf("200 has no content %s", f.MediaType())
		}
	}
	if len(enum) != len(export.Formats()) {
		t.Errorf("format enum %v, want %v", enum, export.FormatNames())
	}
	for _, h := range []string{"X-Total-Count", "X-Next-Cursor", "Link"} {
		if ok.Headers[h] == nil {
			t.Errorf("200 lacks header %s", h)
		}
	}
}

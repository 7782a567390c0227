package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"worklog/data"
	"worklog/export"
	"worklog/export/api/auth"
	"worklog/export/jobs"
	"worklog/ingest"
	"worklog/privacy"
	"worklog/query"

	"github.com/labstack/echo/v4"
)

// OpenAPIPath serves the OpenAPI document.
const OpenAPIPath = APIBase + "/openapi.json"

// Job routes, as the OpenAPI document names them.
const (
	jobPath     = APIBase + "/export/jobs/{id}"
	jobFilePath = APIBase + "/export/jobs/{id}/file"
)

// obj is a JSON object of the document.
type obj = map[string]any

func (s *Server) handleOpenAPI(c echo.Context) error {
	b, err := OpenAPI()
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, b)
}

// OpenAPI returns the OpenAPI 3.1 document of every route, generated from
// the data catalogue: the event schema's fields, types, enums and
// descriptions, and the export's orderByField and filter key enums.
func OpenAPI() ([]byte, error) {
	b, err := json.MarshalIndent(openAPIDocument(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode openapi document: %w", err)
	}
	return b, nil
}

func openAPIDocument() obj {
	fields := data.Fields()
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return obj{
		"openapi": "3.1.0",
		"info": obj{
			"title":       "worklog",
			"version":     "1.0.0",
			"description": "Export of customer-service worklog events (" + strings.Join(export.FormatNames(), ", ") + ") with privacy levels, keyset pages, background exports and HTTP ingest. Every route refuses query parameters it does not know (400, code unknown_parameter, naming the parameter); access_token is never accepted in a query string.",
		},
		"servers": []any{obj{"url": "/"}},
		"paths": obj{
			ExportPath:         obj{"get": exportOperation(names)},
			AnalyticsPath:      obj{"get": analyticsOperation(names)},
			JobsPath:           obj{"get": jobListOperation()},
			jobPath:            obj{"get": jobOperation()},
			jobFilePath:        obj{"get": jobFileOperation()},
			IngestPath:         obj{"post": ingestOperation()},
			ForgetPath:         obj{"post": forgetOperation()},
			CatalogPath:        obj{"get": catalogOperation()},
			PagePath:           obj{"get": pageOperation("page", "The web page (SPEC §11): export builder and preview. Needs no token; it calls this API with the token the user enters.")},
			UIPath + "/{file}": obj{"get": pageAssetOperation()},
			UIConfigPath: obj{"get": publicOperation("uiConfig", "How the page is served: the demo token under 'serve --demo' on loopback, else nothing.", obj{"type": "object",
				"properties": obj{"demoToken": obj{"type": "string"}}})},
			OpenAPIPath: obj{"get": publicOperation("openapi", "This OpenAPI document.", obj{"type": "object"})},
			HealthzPath: obj{"get": publicOperation("healthz", "Liveness: 200 while the process serves HTTP.", statusSchema())},
			ReadyzPath:  obj{"get": readyOperation()},
			MetricsPath: obj{"get": metricsOperation()},
		},
		"components": obj{
			"securitySchemes": obj{
				"bearerAuth": obj{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
					"description": "HS256 with the shared secret, or RS256/ES256 with the configured public key. auth.Claims: sub, email, permissions (reporting.viewEmail, reporting.ingest, reporting.erase), exp required."},
			},
			"schemas": obj{
				"Event":         eventSchema(fields, false),
				"IngestEvent":   eventSchema(fields, true),
				"Error":         errorSchema(),
				"jobs.Job":      jobSchema(),
				"JobScheduled":  jobScheduledSchema(),
				"IngestSummary": ingestSummarySchema(),
				"Catalog":       catalogSchema(),
			},
		},
		"security": []any{obj{"bearerAuth": []any{}}},
	}
}

// fieldSchema is the JSON schema of one field as exported; in ingest, list
// fields are accepted as real arrays too.
func fieldSchema(f data.Field, ingest bool) obj {
	s := obj{"description": f.Description}
	typ := ""
	switch f.Kind {
	case data.KindTimestamp:
		typ = "string"
		s["pattern"] = `^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?$`
		s["examples"] = []any{"2024-05-10 14:52:37"}
	case data.KindInt:
		typ = "integer"
		if f.HasRange {
			s["minimum"], s["maximum"] = f.Min, f.Max
		}
	case data.KindFlag:
		typ = "integer"
		s["enum"] = enumOf(f, []any{0, 1})
	case data.KindFloat:
		typ = "number"
	case data.KindEnum:
		typ = "string"
		vals := make([]any, len(f.Enum))
		for i, v := range f.Enum {
			vals[i] = v
		}
		s["enum"] = enumOf(f, vals)
	case data.KindList:
		// Exports write lists as JSON-array strings, `["a", "b"]`, "[]" when empty.
		s["examples"] = []any{`["Billing", "Payment reminder"]`}
		if ingest {
			delete(s, "examples")
			s["oneOf"] = []any{obj{"type": "string"}, obj{"type": "array", "items": obj{"type": "string"}}, obj{"type": "null"}}
			return s
		}
		return withType(s, "string", false)
	default:
		typ = "string"
	}
	return withType(s, typ, !f.Required)
}

// enumOf adds null to the enum of an optional field (JSON Schema requires
// the enum itself to admit the null the type admits).
func enumOf(f data.Field, vals []any) []any {
	if !f.Required {
		vals = append(vals, nil)
	}
	return vals
}

func withType(s obj, typ string, nullable bool) obj {
	if nullable {
		s["type"] = []any{typ, "null"}
	} else {
		s["type"] = typ
	}
	return s
}

func eventSchema(fields []data.Field, ingest bool) obj {
	props := obj{}
	var required []any
	for _, f := range fields {
		props[f.Name] = fieldSchema(f, ingest)
		if f.Required {
			required = append(required, f.Name)
		}
	}
	s := obj{"type": "object", "properties": props, "required": required}
	if ingest {
		s["description"] = "An event as ingested: unknown keys are ignored and counted; list fields as JSON-array strings or arrays."
	} else {
		s["description"] = "A worklog event in field order. Fields the privacy level omits are absent; name is a pseudonym and date has no time at level pseudonymized."
		// Fields may be omitted by the privacy level: none is required in the output.
		delete(s, "required")
		s["additionalProperties"] = false
	}
	return s
}

func errorSchema() obj {
	return obj{"type": "object", "required": []any{"error"}, "properties": obj{
		"error": obj{"type": "object", "required": []any{"code", "message"}, "properties": obj{
			"code":    obj{"type": "string"},
			"message": obj{"type": "string"},
			"param":   obj{"type": "string", "description": "The offending parameter, e.g. filters[1][comparator]."},
		}},
	}}
}

func statusSchema() obj {
	return obj{"type": "object", "properties": obj{"status": obj{"type": "string"}}}
}

func jobSchema() obj {
	str := obj{"type": "string"}
	return obj{"type": "object", "properties": obj{
		"id":          str,
		"status":      obj{"type": "string", "enum": enumOfStrings(jobs.Statuses())},
		"format":      obj{"type": "string", "enum": formatEnum()},
		"rows":        obj{"type": "integer"},
		"createdAt":   obj{"type": "string", "format": "date-time"},
		"finishedAt":  obj{"type": []any{"string", "null"}, "format": "date-time"},
		"downloadUrl": obj{"type": []any{"string", "null"}, "description": "A signed link to the file (a path under this server): it needs no token and works until expiresAt."},
		"error": obj{"type": []any{"object", "null"}, "required": []any{"code", "message"},
			"description": "Why the export or its delivery failed, or that an erasure deleted the file; null otherwise.",
			"properties": obj{
				"code":    obj{"type": "string", "description": "export_failed, insufficient_storage (the disk filled up), export_storage_full (the file would pass --max-export-bytes), timeout (--job-timeout), store_damaged, audit_failed, delivery_failed (the file stays downloadable), erased, or a parameter error's code when the request no longer plans."},
				"message": obj{"type": "string"},
			}},
		"expiresAt":    obj{"type": []any{"string", "null"}, "format": "date-time", "description": "When the download link expires (410 Gone after)."},
		"deliverTo":    obj{"type": "string", "description": "The token's email claim at request time."},
		"delivery":     obj{"type": "string", "enum": enumOfStrings(jobs.DeliveryStates()), "description": "sent: an SMTP server accepted the message; written: only written to the outbox (deliveryPath)."},
		"deliveredAt":  obj{"type": []any{"string", "null"}, "format": "date-time"},
		"deliveryPath": obj{"type": []any{"string", "null"}, "description": "With delivery written: the .eml file in the server's outbox (no SMTP server is configured, so nobody has received it)."},
	}}
}

func jobScheduledSchema() obj {
	str := obj{"type": "string"}
	return obj{"type": "object", "properties": obj{
		"status":    obj{"type": "string", "const": "scheduled"},
		"jobId":     str,
		"rows":      obj{"type": "integer"},
		"format":    str,
		"deliverTo": str,
		"statusUrl": str,
	}}
}

func ingestSummarySchema() obj {
	count := obj{"type": "integer", "minimum": 0}
	return obj{"type": "object", "required": []any{"new", "updated", "unchanged", "rejected", "unknownKeys", "errors"}, "properties": obj{
		"new":         obj{"type": "integer", "minimum": 0, "description": "Events whose userWorklogId the store did not hold."},
		"updated":     obj{"type": "integer", "minimum": 0, "description": "Events that replaced a stored event of other content."},
		"unchanged":   obj{"type": "integer", "minimum": 0, "description": "Events the store already held with the same content in every field (re-ingesting a dump changes nothing)."},
		"rejected":    count,
		"unknownKeys": count,
		"errors": obj{"type": "array", "maxItems": maxIngestErrors, "description": "The first invalid records.",
			"items": obj{"type": "object", "properties": obj{
				"line": obj{"type": "integer"}, "field": obj{"type": "string"}, "message": obj{"type": "string"},
			}}},
		"error": obj{"$ref": "#/components/schemas/Error/properties/error"},
	}}
}

func errorResponse(desc string) obj {
	return obj{"description": desc, "content": obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/Error"}}}}
}

func exportOperation(names []string) obj {
	// The enums read the catalogue's facts: orderByField lists the sortable
	// fields, filters[i][key] the filterable ones (all 35 today).
	var sortable, filterable []any
	for _, n := range names {
		f, _ := data.Lookup(n)
		if f.Sortable {
			sortable = append(sortable, n)
		}
		if f.Filterable {
			filterable = append(filterable, n)
		}
	}
	var compEnum []any
	for _, c := range query.ComparatorDocs() {
		compEnum = append(compEnum, c.Name)
	}
	totalCount := obj{"description": "Rows matching the filters, before limit, offset and cursor.", "schema": obj{"type": "integer"}}
	var attached []string
	for _, f := range export.Formats() {
		if f.Attachment() {
			attached = append(attached, string(f))
		}
	}
	disposition := obj{"description": "attachment; filename=… (" + strings.Join(attached, ", ") + ")", "schema": obj{"type": "string"}}
	nextCursor := obj{"description": "Pages only, when more rows follow: the cursor parameter of the next page.", "schema": obj{"type": "string"}}
	link := obj{"description": `Pages only, when more rows follow: <…&cursor=…>; rel="next", this request with the next page's cursor.`, "schema": obj{"type": "string"}}
	return obj{
		"operationId": "exportReportingWorklog",
		"summary":     "Export worklog activities",
		"description": fmt.Sprintf("Without limit: the whole filtered result (synchronous up to %d rows as XLSX and %d in every other format by default; both are settings), else a background job delivered by e-mail). With limit: one page; follow X-Next-Cursor (or the Link rel=next) for the next one. Filters are AND-ed. Unknown parameters are refused.", DefaultSyncLimitXLSX, DefaultSyncLimitRows),
		"parameters": []any{
			obj{"name": "format", "in": "query", "description": "Export format. Absent: the first export media type the Accept header names (" + strings.Join(formatMediaTypes(), ", ") + "), else the server's default format setting.",
				"schema": obj{"type": "string", "enum": formatEnum()}},
			obj{"name": "limit", "in": "query", "description": "The number of items to return; absent: the whole export.",
				"schema": obj{"type": "integer", "minimum": 1, "maximum": query.MaxLimit}},
			obj{"name": "offset", "in": "query", "description": "The number of items to skip. Deep pages are cheaper and stable under ingests with cursor.",
				"schema": obj{"type": "integer", "minimum": 0, "default": 0}},
			obj{"name": "cursor", "in": "query", "description": "The X-Next-Cursor of the previous page: continue right after its last row. With limit, without offset, and with the same filters and ordering as that page (else 400 naming cursor). Every matching row is visited once even while ingests commit between pages.",
				"schema": obj{"type": "string"}},
			obj{"name": "bom", "in": "query", "description": "CSV only: true starts the file with a UTF-8 byte-order mark, which Excel on Windows needs to read non-ASCII names. Absent: the server's --csv-bom setting (default false: RFC 4180 without a mark).",
				"schema": obj{"type": "boolean"}},
			obj{"name": "orderByField", "in": "query", "description": "Column used to order the result set; ties are broken by userWorklogId.",
				"schema": obj{"type": "string", "enum": sortable, "default": data.DateField}},
			obj{"name": "orderByDirection", "in": "query", "description": "Sort direction applied to orderByField; nulls sort last.",
				"schema": obj{"type": "string", "enum": []any{"asc", "desc"}, "default": "desc"}},
			filtersParam("filters[i][key], filters[i][comparator] and its operands: value (equals, notEquals, gt, gte, lt, lte, contains, notContains, startsWith), from and to (between), values[] (in, notIn), none (isNull, isNotNull). Indices need not be contiguous.", filterable, compEnum),
		},
		"responses": obj{
			"200": obj{"description": "The rows.",
				"headers": obj{"X-Total-Count": totalCount, "Content-Disposition": disposition, "X-Next-Cursor": nextCursor, "Link": link},
				"content": formatContent()},
			"202": obj{"description": "Too large to answer synchronously: scheduled as a background job.",
				"content": obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/JobScheduled"}}}},
			"400": errorResponse("A bad or unknown parameter, named in error.param (a tampered or foreign cursor names cursor); email_required when a background export has nowhere to be delivered, email_invalid when the token's email claim is no plain address."),
			"401": errorResponse("Missing or invalid bearer token."),
			"414": errorResponse("The query string is too long."),
			"429": errorResponse("Too many exports running (--max-sync-exports), too many pages being served (--max-pages, after waiting --page-queue-wait), this user's share of them taken (too_many_user_requests: --exports-per-user, --queries-per-user), too many background jobs of this user (too_many_jobs) or of all users (jobs_queue_full); see Retry-After."),
			"507": errorResponse("Insufficient storage: the finished exports kept take --max-export-bytes (export_storage_full), or the server's disk is full (insufficient_storage)."),
			"500": errorResponse("Internal error."),
			"503": errorResponse("The export did not finish within the time limit (timeout), or the server is answering too many queries (busy, with Retry-After)."),
		},
	}
}

// measureNames lists every measure a request may name, generated from the
// measure kinds and the catalogue: count, tickets, agents, sum(duration), ...
func measureNames() []any {
	var out []any
	for _, m := range query.MeasureDocs() {
		if len(m.Fields) == 0 {
			out = append(out, string(m.Kind))
			continue
		}
		for _, f := range m.Fields {
			out = append(out, string(m.Kind)+"("+f+")")
		}
	}
	return out
}

// measuresDescription documents each measure kind and the fields it takes.
func measuresDescription() string {
	d := "1 to " + fmt.Sprint(query.MaxMeasures) + " measures, in order (measures[]=count&measures[]=avg(duration), or indexed measures[0]); each names its result column as written."
	for _, m := range query.MeasureDocs() {
		name := string(m.Kind)
		if len(m.Fields) > 0 {
			name += "(F), F one of " + strings.Join(m.Fields, ", ")
		}
		d += " " + name + ": " + m.Description + "."
	}
	return d
}

func analyticsOperation(fieldNames []string) obj {
	fieldEnum := make([]any, len(fieldNames))
	for i, n := range fieldNames {
		fieldEnum[i] = n
	}
	var dims []any
	for _, d := range query.DimensionNames() {
		dims = append(dims, d)
	}
	var compEnum []any
	for _, c := range query.ComparatorDocs() {
		compEnum = append(compEnum, c.Name)
	}
	row := obj{"type": "object", "description": "One group: the dimensions in groupBy order, then the measures in measures order, keyed as written in the request (\"date:week\", \"avg(duration)\"). Time buckets are labelled by their first instant: date:hour YYYY-MM-DD HH:00:00, date:day and date:week (its Monday) YYYY-MM-DD, date:month YYYY-MM, date:quarter YYYY-Qn, date:year YYYY. A null dimension value is its own group; a measure over no value is null.",
		"additionalProperties": obj{"type": []any{"string", "number", "integer", "null"}}}
	return obj{
		"operationId": "analyticsReportingWorklog",
		"summary":     "Volumes, handling times, SLA and AI-automation rates by dimension",
		"description": "SPEC §10. Groups the filtered events by 0–4 dimensions and computes 1–20 measures per group, under the privacy level: dimensions and measures reading a field the level omits are refused (field_not_available), except the counts tickets and agents; date:hour is refused where dates are cut to their day; grouping by name at level pseudonymized groups by agent, labelled with the export's pseudonyms. With the server setting --min-group-agents N > 1, at levels partiallyPseudonymized and pseudonymized, groups of fewer than N distinct agents are left out (X-Suppressed-Groups) and grouping by name is refused.",
		"parameters": []any{
			obj{"name": "groupBy[]", "in": "query", "description": "0 to " + fmt.Sprint(query.MaxDimensions) + " dimensions, in order (or indexed groupBy[0], groupBy[1]). A list field (tags, teams, aiAgentsUsed) groups by element: an event counts once in the group of each element, an empty or null list in the null group. date groups by a time bucket (ISO weeks, Monday first).",
				"style": "form", "explode": true,
				"schema": obj{"type": "array", "maxItems": query.MaxDimensions, "items": obj{"type": "string", "enum": dims}}},
			obj{"name": "measures[]", "in": "query", "required": true, "description": measuresDescription(),
				"style": "form", "explode": true,
				"schema": obj{"type": "array", "minItems": 1, "maxItems": query.MaxMeasures, "items": obj{"type": "string", "enum": measureNames()}}},
			obj{"name": "format", "in": "query", "description": "Output format. Defaults to the server's default format setting.",
				"schema": obj{"type": "string", "enum": formatEnum()}},
			obj{"name": "limit", "in": "query", "description": "The number of groups to return.",
				"schema": obj{"type": "integer", "minimum": 1, "maximum": query.MaxGroupLimit, "default": query.DefaultGroupLimit}},
			obj{"name": "offset", "in": "query", "description": "The number of groups to skip.",
				"schema": obj{"type": "integer", "minimum": 0, "default": 0}},
			obj{"name": "orderByField", "in": "query", "description": "A groupBy entry or a measure, written as in the request (avg(duration)); absent: the dimensions in order. Ties are broken by the dimensions in order, ascending.",
				"schema": obj{"type": "string"}},
			obj{"name": "orderByDirection", "in": "query", "description": "Sort direction; nulls sort last.",
				"schema": obj{"type": "string", "enum": []any{"asc", "desc"}, "default": "asc"}},
			filtersParam("As for the export: filters[i][key], filters[i][comparator] and its operands; AND-ed; the same privacy refusals.", fieldEnum, compEnum),
		},
		"responses": obj{
			"200": obj{"description": "The page of groups.",
				"headers": obj{
					"X-Total-Count":       obj{"description": "Groups before limit and offset (suppressed groups not counted).", "schema": obj{"type": "integer"}},
					"X-Suppressed-Groups": obj{"description": "Groups left out for having fewer distinct agents than --min-group-agents (only while it applies).", "schema": obj{"type": "integer"}},
					"Content-Disposition": obj{"description": "attachment; filename=… (CSV and XLSX)", "schema": obj{"type": "string"}},
				},
				"content": obj{
					"application/json": obj{"schema": obj{"type": "array", "items": row}},
					"text/csv":         obj{"schema": obj{"type": "string"}},
					"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": obj{"schema": obj{"type": "string", "contentEncoding": "binary"}},
				}},
			"400": errorResponse("A bad parameter, named in error.param (groupBy[1], measures[0], filters[2][key], ...); field_not_available for what the privacy level hides."),
			"401": errorResponse("Missing or invalid bearer token."),
			"414": errorResponse("The query string is too long."),
			"429": errorResponse("Too many analytics queries running, or this user's share of pages and analytics queries taken (too_many_user_requests, --queries-per-user); see Retry-After."),
			"500": errorResponse("Internal error."),
			"503": errorResponse("The query did not finish within the time limit."),
		},
	}
}

func idParam() obj {
	return obj{"name": "id", "in": "path", "required": true, "schema": obj{"type": "string"}}
}

func jobOperation() obj {
	return obj{
		"operationId": "getExportJob",
		"summary":     "Status of a background export",
		"parameters":  []any{idParam()},
		"responses": obj{
			"200": obj{"description": "The job.", "content": obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/jobs.Job"}}}},
			"401": errorResponse("Missing or invalid bearer token."),
			"404": errorResponse("No such job for this token's subject."),
		},
	}
}

func jobListOperation() obj {
	return obj{
		"operationId": "listExportJobs",
		"summary":     "The caller's background exports, newest first",
		"parameters": []any{
			obj{"name": "limit", "in": "query", "description": "The most jobs to return.",
				"schema": obj{"type": "integer", "minimum": 1, "maximum": jobs.MaxList, "default": defaultJobList}},
		},
		"responses": obj{
			"200": obj{"description": "The jobs of the token's subject, newest first, as job statuses.",
				"headers": obj{"X-Total-Count": obj{"description": "All jobs of the subject.", "schema": obj{"type": "integer"}}},
				"content": obj{"application/json": obj{"schema": obj{"type": "array", "items": obj{"$ref": "#/components/schemas/jobs.Job"}}}}},
			"400": errorResponse("A bad or unknown parameter, named in error.param."),
			"401": errorResponse("Missing or invalid bearer token."),
		},
	}
}

func jobFileOperation() obj {
	return obj{
		"operationId": "getExportJobFile",
		"summary":     "Download the file of a finished background export",
		"description": "With a bearer token, for the job's owner. Or by the signed link of the e-mail and of downloadUrl (expires and sig), which needs no token: it opens in a browser, for this job's file only, until it expires.",
		"security":    []any{obj{"bearerAuth": []any{}}, obj{}},
		"parameters": []any{idParam(),
			obj{"name": linkExpiresParam, "in": "query", "description": "Signed link: when it expires, in Unix seconds.", "schema": obj{"type": "integer"}},
			obj{"name": linkSigParam, "in": "query", "description": "Signed link: HMAC-SHA256 of the job id and expires under the server's key, base64url.", "schema": obj{"type": "string"}},
		},
		"responses": obj{
			"200": obj{"description": "The file, with the format's Content-Type and an attachment Content-Disposition.", "content": formatContent()},
			"401": errorResponse("No signed link and a missing or invalid bearer token."),
			"403": errorResponse("A signed link whose job, expiry or signature was altered (invalid_link); or the privacy level or permissions in force now are stricter than when the job was made."),
			"404": errorResponse("No such job for this token's subject."),
			"409": errorResponse("The job is not done yet (not_ready) or failed (job_failed)."),
			"410": errorResponse("The download link has expired (gone), or an erasure of personal data deleted the file (erased)."),
		},
	}
}

func ingestOperation() obj {
	events := obj{"type": "array", "items": obj{"$ref": "#/components/schemas/IngestEvent"}}
	summary := obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/IngestSummary"}}}
	return obj{
		"operationId": "ingestReportingWorklog",
		"summary":     "Ingest an event dump",
		"description": "The same path as `worklog ingest`: validation, de-duplication by userWorklogId (last wins), one atomic commit. The format is detected from the content; Content-Encoding gzip or zstd (also detected). A second ingest waits for the first to commit. Needs permission reporting.ingest.",
		"parameters": []any{
			obj{"name": paramOnError, "in": "query", "description": "fail: one invalid record commits nothing (422). skip: valid records are committed, invalid ones listed.",
				"schema": obj{"type": "string", "enum": []any{"fail", "skip"}, "default": "fail"}},
		},
		"requestBody": obj{"required": true, "content": obj{
			"application/x-ndjson": obj{"schema": obj{"type": "string", "description": "One IngestEvent object per line."}},
			"application/json":     obj{"schema": events},
			"text/csv":             obj{"schema": obj{"type": "string", "description": "A header of field names, then one event per row."}},
		}},
		"responses": obj{
			"200": obj{"description": "Committed.", "content": summary},
			"400": errorResponse("Unreadable input or a bad parameter; nothing committed."),
			"401": errorResponse("Missing or invalid bearer token."),
			"403": errorResponse("The token lacks permission reporting.ingest."),
			"408": errorResponse("No byte of the body arrived for --read-stall-timeout; nothing committed."),
			"429": errorResponse("More ingests are being received or run than --max-ingests; see Retry-After."),
			"507": errorResponse("Insufficient storage: the server's disk is full; nothing committed."),
			"413": errorResponse("The body as sent exceeds --max-ingest-bytes, a record (line, array element, CSV row) exceeds --max-record-bytes, or a compressed body expands beyond --max-decompressed-bytes; nothing committed. The message names the line and the limit."),
			"415": errorResponse("Unsupported Content-Type or Content-Encoding."),
			"422": obj{"description": "Invalid records under onError=fail; nothing committed.", "content": summary},
		},
	}
}

func forgetOperation() obj {
	count := obj{"type": "integer", "minimum": 0}
	return obj{
		"operationId": "forgetUser",
		"summary":     "Erase a user: anonymize or delete their events",
		"description": "SPEC §12. anonymize (default) keeps the events for the statistics but sets name, email, userId and rawData to null; delete removes them. One atomic commit, like an ingest (it waits for a running ingest); idempotent. Finished export files and outbox messages made before it are deleted and their jobs answer 410 (status erased); running jobs are run again on the new data. Needs permission " + auth.PermErase + ".",
		"requestBody": obj{"required": true, "content": obj{"application/json": obj{"schema": obj{
			"type": "object", "required": []any{"userId"}, "additionalProperties": false, "properties": obj{
				"userId": obj{"type": "integer", "description": "The userId to erase."},
				"mode":   obj{"type": "string", "enum": []any{string(ingest.Anonymize), string(ingest.Delete)}, "default": string(ingest.Anonymize)},
			}}}}},
		"responses": obj{
			"200": obj{"description": "Committed (or nothing to change: zeros).", "content": obj{"application/json": obj{"schema": obj{
				"type": "object", "required": []any{"events", "months"}, "properties": obj{
					"events": obj{"type": "integer", "minimum": 0, "description": "Events anonymized or deleted."},
					"months": count,
				}}}}},
			"400": errorResponse("A bad body; param names the key."),
			"401": errorResponse("Missing or invalid bearer token."),
			"403": errorResponse("The token lacks permission " + auth.PermErase + "."),
			"415": errorResponse("Content-Type is not application/json."),
		},
	}
}

func publicOperation(id, desc string, schema obj) obj {
	return obj{
		"operationId": id,
		"summary":     desc,
		"security":    []any{},
		"responses":   obj{"200": obj{"description": "OK", "content": obj{"application/json": obj{"schema": schema}}}},
	}
}

func readyOperation() obj {
	op := publicOperation("readyz", "Readiness: 200 when the store is readable and DuckDB answers.", statusSchema())
	op["responses"].(obj)["503"] = errorResponse("Not ready.")
	return op
}

func metricsOperation() obj {
	return obj{
		"operationId": "metrics",
		"summary":     "Prometheus metrics (text exposition format).",
		"security":    []any{},
		"responses":   obj{"200": obj{"description": "OK", "content": obj{"text/plain": obj{"schema": obj{"type": "string"}}}}},
	}
}

// formatContent is the content map of a response in any export format:
// JSON an array of events, NDJSON and CSV text, the others binary.
func formatContent() obj {
	content := obj{}
	for _, f := range export.Formats() {
		switch f {
		case export.FormatJSON:
			content[f.MediaType()] = obj{"schema": obj{"type": "array", "items": obj{"$ref": "#/components/schemas/Event"}}}
		case export.FormatNDJSON:
			content[f.MediaType()] = obj{"schema": obj{"type": "string", "description": "One Event object per line."}}
		case export.FormatCSV:
			content[f.MediaType()] = obj{"schema": obj{"type": "string"}}
		default:
			content[f.MediaType()] = obj{"schema": obj{"type": "string", "contentEncoding": "binary"}}
		}
	}
	return content
}

// formatMediaTypes lists the export formats' media types.
func formatMediaTypes() []string {
	var out []string
	for _, f := range export.Formats() {
		out = append(out, f.MediaType())
	}
	return out
}

// formatEnum lists the export formats for a schema enum.
func formatEnum() []any {
	formats := export.Formats()
	out := make([]any, len(formats))
	for i, f := range formats {
		out[i] = string(f)
	}
	return out
}

// enumOfStrings turns a list of named strings into an OpenAPI enum.
func enumOfStrings[S ~string](vals []S) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = string(v)
	}
	return out
}

func catalogOperation() obj {
	return obj{
		"operationId": "catalogReportingWorklog",
		"summary":     "The export's fields as this token sees them",
		"description": "The privacy level in force for the token, the fields present in the output (omitted ones are only counted) with their kind, enum, treatment (shown, dateOnly, pseudonym), whether they may be filtered and ordered on and with which comparators; the formats, the page size bound and the synchronous limits. The web page builds its filter builder from it.",
		"responses": obj{
			"200": obj{"description": "The catalogue.", "content": obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/Catalog"}}}},
			"401": errorResponse("Missing or invalid bearer token."),
		},
	}
}

func catalogSchema() obj {
	str := obj{"type": "string"}
	strs := obj{"type": "array", "items": str}
	kinds := make([]any, 0, len(kindNames))
	for _, k := range []data.Kind{data.KindTimestamp, data.KindInt, data.KindFlag, data.KindFloat, data.KindString, data.KindEnum, data.KindList} {
		kinds = append(kinds, kindNames[k])
	}
	field := obj{"type": "object", "properties": obj{
		"name":        str,
		"kind":        obj{"type": "string", "enum": kinds},
		"description": str,
		"nullable":    obj{"type": "boolean"},
		"enum":        strs,
		"minimum":     obj{"type": "integer"},
		"maximum":     obj{"type": "integer"},
		"treatment":   obj{"type": "string", "enum": []any{string(privacy.TreatShown), string(privacy.TreatDateOnly), string(privacy.TreatPseudonym)}},
		"filterable":  obj{"type": "boolean"},
		"sortable":    obj{"type": "boolean"},
		"comparators": strs,
	}}
	return obj{"type": "object", "properties": obj{
		"privacyLevel":     obj{"type": "string", "enum": []any{string(privacy.None), string(privacy.Partial), string(privacy.Pseudonymized)}},
		"omittedFields":    obj{"type": "integer", "minimum": 0},
		"fields":           obj{"type": "array", "items": field},
		"comparators":      obj{"type": "array", "items": obj{"type": "object", "properties": obj{"name": str, "operands": strs}}},
		"formats":          obj{"type": "array", "items": obj{"type": "string", "enum": formatEnum()}},
		"maxLimit":         obj{"type": "integer"},
		"syncLimits":       obj{"type": "object", "additionalProperties": obj{"type": "integer"}},
		"orderByField":     str,
		"orderByDirection": obj{"type": "string", "enum": []any{"asc", "desc"}},
		"analytics": obj{"type": "object", "description": "The analytics endpoint's groupBy entries and measures that this token may use.",
			"properties": obj{
				"path":        str,
				"timeBuckets": strs,
				"dimensions": obj{"type": "array", "items": obj{"type": "object", "properties": obj{
					"name": str, "kind": obj{"type": "string", "enum": kinds}, "description": str}}},
				"measures": obj{"type": "array", "items": obj{"type": "object", "properties": obj{
					"name": str, "description": str,
					"unit": obj{"type": "string", "enum": []any{"count", "ratio", data.UnitSeconds, ""}, "description": "ratio: 0 to 1, shown as %"}}}},
				"maxDimensions": obj{"type": "integer"},
				"maxMeasures":   obj{"type": "integer"},
				"maxLimit":      obj{"type": "integer"},
			}},
	}}
}

func pageOperation(id, desc string) obj {
	return obj{
		"operationId": id,
		"summary":     desc,
		"security":    []any{},
		"responses":   obj{"200": obj{"description": "OK", "content": obj{"text/html": obj{"schema": obj{"type": "string"}}}}},
	}
}

func pageAssetOperation() obj {
	return obj{
		"operationId": "pageAsset",
		"summary":     "A file of the web page (script, style sheet, icon), built into the binary.",
		"security":    []any{},
		"parameters":  []any{obj{"name": "file", "in": "path", "required": true, "schema": obj{"type": "string"}}},
		"responses": obj{
			"200": obj{"description": "The file.", "content": obj{"*/*": obj{"schema": obj{"type": "string"}}}},
			"404": errorResponse("No such file."),
		},
	}
}

// filtersParam is the deepObject parameter filters[i][...] of the export
// and analytics routes: keys from keys, comparators from comparators.
func filtersParam(description string, keys, comparators []any) obj {
	return obj{"name": "filters", "in": "query", "style": "deepObject", "explode": true,
		"description": description,
		"schema": obj{"type": "object", "additionalProperties": obj{
			"type": "object", "required": []any{"key", "comparator"},
			"properties": obj{
				"key":        obj{"type": "string", "enum": keys},
				"comparator": obj{"type": "string", "enum": comparators},
				"value":      obj{"type": "string"},
				"from":       obj{"type": "string"},
				"to":         obj{"type": "string"},
				"values":     obj{"type": "array", "items": obj{"type": "string"}, "minItems": 1, "maxItems": query.DefaultMaxValues},
			},
		}}}
}

package query

import (
	"context"
	"net/url"
	"testing"

	"worklog/data"
)

// benchStore writes 200,000 generated events over eight months, with
// rawData of 400–800 bytes like the measurements in NOTES.md.
func benchStore(b *testing.B) data.Snapshot {
	b.Helper()
	src := `(SELECT
		TIMESTAMP '2024-01-01 00:00:00' + to_seconds(i * 104) AS "date",
		'Agent ' || (i % 97) AS "name", i % 50000 AS "ticketId", NULL AS "conversationId", i % 97 AS "userId",
		['closeAction','readAction','statusAction','writeAction','autoProcessAction'][i % 5 + 1] AS "action",
		(i * 7919) % 3600 AS "duration", i % 60 AS "durationAfterWork", i % 2 AS "reOpened", 'active' AS "status",
		NULL AS "aiAgent", 'Billing' AS "topic", 'Payment reminder' AS "subTopic", 'Billing, Payment reminder' AS "allTags",
		['Billing', 'Payment reminder'] AS "tags", ['email','portal','phone','chat'][i % 4 + 1] AS "channel",
		'Customer care' AS "department", ['Customer care'] AS "teams", 'agent' || (i % 97) || '@example.com' AS "email",
		repeat('x', 400 + (i * 31) % 400) AS "rawData", i % 6 AS "aiAutomationLevel", 1 AS "customerIdentifiedCorrectly",
		1 AS "tagsIdentifiedCorrectly", (i % 100) / 100.0 AS "textAssistanceAccuracy", [] AS "aiAgentsUsed", 0 AS "skippedTicket",
		-3600 AS "netSecondsClosedAfterSLA", NULL AS "closingDateForSLA", NULL AS "statusActionDetail", NULL AS "pendingDueBy",
		NULL AS "pendingSeconds", NULL AS "netPendingSeconds", NULL AS "firstPendingAt", i AS "userWorklogId", 0 AS "timesSetToOpen"
		FROM range(200000) r(i))`
	return writeStore(b, b.TempDir(), src)
}

// drain reads every batch and returns the row count.
func drain(b *testing.B, e *Engine, snap data.Snapshot, p *Plan) int64 {
	rr, err := e.Records(context.Background(), snap, p)
	if err != nil {
		b.Fatal(err)
	}
	defer rr.Release()
	var n int64
	for rr.Next() {
		n += rr.RecordBatch().NumRows()
	}
	if err := rr.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

func BenchmarkRecords(b *testing.B) {
	snap := benchStore(b)
	e, err := NewEngine(fixedSource{snap}, EngineOptions{TempDirectory: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	page := "limit=100&orderByField=duration&orderByDirection=asc&filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-03-10&filters[0][to]=2024-03-11&filters[1][key]=action&filters[1][comparator]=in&filters[1][values][]=writeAction&filters[1][values][]=statusAction"
	cases := []struct {
		name  string
		query string
		whole bool
		rows  int64
	}{
		{"export/chunked", "", false, 200000},
		{"export/one-query", "", true, 200000},
		{"page/filtered", page, false, 100},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			e.wholeExport = tc.whole
			p, err := Parse(mustValues(b, tc.query), Options{})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if n := drain(b, e, snap, p); n != tc.rows {
					b.Fatalf("%d rows, want %d", n, tc.rows)
				}
			}
		})
	}
	b.Run("count/filtered", func(b *testing.B) {
		p, err := Parse(mustValues(b, page), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := e.Count(context.Background(), snap, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func mustValues(tb testing.TB, query string) url.Values {
	tb.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

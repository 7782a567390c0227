package demo

import (
	"math/rand/v2"
	"strconv"
)

// ticket is the state of one ticket that events refer to. Tickets live in a
// fixed-size pool (see generator.pool), so memory does not grow with the
// number of events.
type ticket struct {
	live           bool
	id             int64
	conversationID int64 // 0: none
	channel        int   // index into generator.channels; -1: null
	topic          int
	tagSet         int // index into world.tagSets; -1: untagged
	department     int
	agent          int   // the agent the ticket is assigned to
	created        int64 // Unix seconds, wall clock
	slaDue         int64 // 0: no SLA
	status         status
	pendingSince   int64
	pendingDueBy   int64
	firstPending   int64 // 0: never pending
	pendingTotal   int64
	netPending     int64
	reopened       bool
	timesSetToOpen int64
	level          int64 // aiAutomationLevel
	customerOK     int64
	tagsOK         int64
	aiUsed         int    // index into world.aiAgentsUsed
	raw            []byte // rawData, encoded as a JSON string (quotes included)
}

// status is a ticket's status.
type status int

// The statuses, in the order of statusNames.
const (
	statusOpen status = iota
	statusActive
	statusPending
	statusClosed
)

// statusNames spell the statuses as events carry them.
var statusNames = [...]string{"open", "active", "pending", "closed"}

// statusTexts are statusNames, encoded.
var statusTexts = texts(statusNames[:]...)

// customerFirstNames and customerLastNames name the customers in ticket
// payloads; unlike agents they include non-ASCII letters, which the payload
// carries as UTF-8. ascii* are the same names as used in e-mail addresses.
var (
	customerFirstNames = []string{"Jürgen", "Anna", "Zoë", "Mehmet", "Sabine", "José", "Birgit", "Lukas", "Małgorzata", "Thomas", "Chloé", "Stefan", "Aylin", "Klaus", "Renée", "Dieter"}
	asciiFirstNames    = []string{"juergen", "anna", "zoe", "mehmet", "sabine", "jose", "birgit", "lukas", "malgorzata", "thomas", "chloe", "stefan", "aylin", "klaus", "renee", "dieter"}
	customerLastNames  = []string{"Müller", "Schäfer", "Öztürk", "Nowak", "Günther", "García", "Schröder", "Keßler", "Yılmaz", "Dubois", "Bauer", "Köhler"}
	asciiLastNames     = []string{"mueller", "schaefer", "oeztuerk", "nowak", "guenther", "garcia", "schroeder", "kessler", "yilmaz", "dubois", "bauer", "koehler"}
	mailDomains        = []string{"example.org", "example.net", "mail.example", "post.example"}
)

// places are street names and their city with a postcode.
var (
	streets = []string{"Lindenstraße", "Hauptstraße", "Am Markt", "Bahnhofstraße", "Gartenweg", "Schillerplatz", "Rosenallee", "Kirchgasse"}
	cities  = []struct{ zip, city string }{
		{"10115", "Berlin"}, {"20095", "Hamburg"}, {"80331", "München"}, {"50667", "Köln"},
		{"60311", "Frankfurt am Main"}, {"70173", "Stuttgart"}, {"04109", "Leipzig"}, {"28195", "Bremen"},
	}
)

var (
	greetings  = []string{"Hello,", "Dear Sir or Madam,", "Hi there,", "Good morning,", "Dear customer service team,"}
	closings   = []string{"Kind regards", "Best regards", "Thank you in advance", "Many thanks", "Regards"}
	priorities = []string{"low", "normal", "normal", "normal", "high", "urgent"}
	// generalSentences pad a message to its size; some carry quotes and a
	// tab so that rawData exercises JSON escaping.
	generalSentences = []string{
		"My customer number is printed on the letter I received last week.",
		"I have already tried to reach you by phone twice without success.",
		"Please confirm the change in writing so that I have it for my records.",
		"The letter says \"final reminder\" in bold letters, which worried me.",
		"I am available in the afternoons if you would like to call me back.",
		"I attached a photo of the document to this message.",
		"Could you please explain the next steps and how long they will take?",
		"This matter is urgent for me because I am travelling next week.",
		"Thank you for your quick help last time, I hope you can help again.",
		"In your portal the field \"contract status\" shows\tpending since weeks.",
		"My neighbour had the same issue and it was solved within a few days.",
		"I would appreciate a short reply even if you need more time to check.",
	}
	attachmentNames = []string{"invoice.pdf", "meter_photo.jpg", "letter_scan.pdf", "screenshot.png", "contract.pdf"}
)

// rawMin and rawMax bound the size of a rawData payload in bytes (before
// it is encoded as a JSON string).
const (
	rawMin = 680
	rawMax = 980
)

// buildRaw writes the ticket's payload (a JSON document) into t.raw, encoded
// as a JSON string. r must be seeded from the ticket alone, so that every
// event of a ticket carries the same payload. head and body are scratch
// buffers, returned for reuse.
func buildRaw(t *ticket, r *rand.Rand, w *world, channel string, head, body []byte) (h, b []byte) {
	cf := r.IntN(len(customerFirstNames))
	cl := r.IntN(len(customerLastNames))
	name := customerFirstNames[cf] + " " + customerLastNames[cl]
	tp := &topics[t.topic]
	c := cities[r.IntN(len(cities))]

	h = append(head[:0], `{"ticketId":`...)
	h = strconv.AppendInt(h, t.id, 10)
	h = append(h, `,"subject":`...)
	h = appendString(h, tp.subjects[r.IntN(len(tp.subjects))])
	h = append(h, `,"channel":`...)
	if channel == "" {
		h = append(h, "null"...)
	} else {
		h = appendString(h, channel)
	}
	h = append(h, `,"priority":`...)
	h = appendString(h, priorities[r.IntN(len(priorities))])
	h = append(h, `,"language":"en","createdAt":"`...)
	h = appendTimestamp(h, t.created)
	h = append(h, `","customer":{"id":`...)
	h = strconv.AppendInt(h, 100000+r.Int64N(900000), 10)
	h = append(h, `,"name":`...)
	h = appendString(h, name)
	h = append(h, `,"email":"`...)
	h = append(h, asciiFirstNames[cf]...)
	h = append(h, '.')
	h = append(h, asciiLastNames[cl]...)
	h = append(h, '@')
	h = append(h, mailDomains[r.IntN(len(mailDomains))]...)
	h = append(h, `","contractNumber":"C-`...)
	h = strconv.AppendInt(h, 1000000+r.Int64N(9000000), 10)
	h = append(h, `","address":{"street":`...)
	h = append(h, '"')
	h = appendEscaped(h, streets[r.IntN(len(streets))])
	h = append(h, ' ')
	h = strconv.AppendInt(h, int64(1+r.IntN(120)), 10)
	h = append(h, '"')
	h = append(h, `,"zip":"`...)
	h = append(h, c.zip...)
	h = append(h, `","city":`...)
	h = appendString(h, c.city)
	h = append(h, `}},"tags":[`...)
	if t.tagSet >= 0 {
		for i, tag := range w.tagSets[t.tagSet].tags {
			if i > 0 {
				h = append(h, ',')
			}
			h = appendString(h, tag)
		}
	}
	h = append(h, `],"attachments":[`...)
	for i, n := 0, r.IntN(3); i < n; i++ {
		if i > 0 {
			h = append(h, ',')
		}
		h = append(h, `{"name":`...)
		h = appendString(h, attachmentNames[r.IntN(len(attachmentNames))])
		h = append(h, `,"size":`...)
		h = strconv.AppendInt(h, 20000+r.Int64N(2000000), 10)
		h = append(h, '}')
	}
	h = append(h, `],"body":"`...)

	// The body: greeting, the topic's sentences, padding sentences until the
	// payload reaches its drawn size, closing and signature.
	target := rawMin + r.IntN(rawMax-rawMin+1)
	b = appendEscaped(body[:0], greetings[r.IntN(len(greetings))])
	b = append(b, `\n\n`...)
	fi := r.IntN(len(tp.body))
	b = appendEscaped(b, tp.body[fi])
	closing := closings[r.IntN(len(closings))]
	// tail is `\n\n<closing>\n<name>"}`: its escaped size, counted ahead.
	tail := 4 + len(closing) + 2 + len(name) + 2
	// used marks sentences already in the body (topic sentences in the low
	// bits, general ones above), so none repeats.
	used := uint64(1) << fi
	for tries := 0; tries < 8; tries++ {
		k := r.IntN(len(tp.body) + len(generalSentences))
		if used&(1<<k) != 0 {
			continue
		}
		var s string
		if k < len(tp.body) {
			s = tp.body[k]
		} else {
			s = generalSentences[k-len(tp.body)]
		}
		if len(h)+len(b)+1+len(s)+4+tail > target {
			continue
		}
		used |= 1 << k
		b = append(b, ' ')
		b = appendEscaped(b, s)
		tries = 0
	}
	b = append(b, `\n\n`...)
	b = appendEscaped(b, closing)
	b = append(b, `\n`...)
	b = appendEscaped(b, name)
	b = append(b, `"}`...)

	// Encode the payload as one JSON string value.
	h = append(h, b...)
	t.raw = appendDocString(t.raw[:0], h)
	return h, b
}

// Package demo generates realistic synthetic worklog events: the activity of
// a customer-service desk of ~200 agents and a handful of AI agents working
// on tickets over 13 months.
//
// The output is NDJSON, one event per line, every catalogue field present in
// catalogue order (null where absent), so it can be fed to the ingest as is.
// Output depends only on Options: the same options give byte-identical
// output. Memory stays flat however many events are written.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"worklog/data"
)

// Options control Generate.
type Options struct {
	// Rows is the number of events to write.
	Rows int
	// Seed selects the data set: the same seed gives byte-identical output,
	// another seed different events. The agents (names, userIds, e-mails,
	// teams) are the same for every seed.
	Seed int64
	// End is the wall-clock time the history ends at: events fall in the
	// 13 months before it, the newest within its last hours. Its fields are
	// read as wall-clock time, whatever its location. Zero means
	// 2026-11-01 00:00:00.
	End time.Time
}

// flushSize is how many bytes are collected before a write to the output.
const flushSize = 64 << 10

// Generate writes opts.Rows events to w as NDJSON. userWorklogId runs from 1
// to Rows in output order and dates never decrease. It checks ctx every few
// thousand events and returns ctx's error when cancelled; output written
// until then is a valid prefix of whole lines.
func Generate(ctx context.Context, w io.Writer, opts Options) error {
	if opts.Rows < 0 {
		return fmt.Errorf("generate demo events: rows must be >= 0, got %d", opts.Rows)
	}
	g, err := newGenerator(opts)
	if err != nil {
		return fmt.Errorf("generate demo events: %w", err)
	}
	buf := make([]byte, 0, flushSize+8<<10)
	for i := 0; i < opts.Rows; i++ {
		if i&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return errors.Join(flush(w, buf), err)
			}
		}
		g.next(i)
		buf = g.enc.appendEvent(buf, g.ev)
		if len(buf) >= flushSize {
			if err := flush(w, buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return flush(w, buf)
}

// flush writes buf to w.
func flush(w io.Writer, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write demo events: %w", err)
	}
	return nil
}

// action is the kind of a worklog event.
type action int

// The actions, in the order of actionNames.
const (
	actClose action = iota
	actRead
	actStatus
	actWrite
	actAuto
)

// actionNames spell the actions as the catalogue's action enum does;
// newGenerator checks them against it.
var actionNames = [...]string{"closeAction", "readAction", "statusAction", "writeAction", "autoProcessAction"}

// actionTexts are actionNames, encoded.
var actionTexts = texts(actionNames[:]...)

// channelWeights is the share of tickets per channel; channels of the
// catalogue's enum that are missing here get weight 1, so the generator
// follows the catalogue. noChannelWeight is the share without a channel.
var channelWeights = map[string]float64{
	"email": 40, "portal": 14, "phone": 15, "chat": 16, "system": 7, "walkIn": 3, "letter": 3,
}

const noChannelWeight = 2

// slaHours is the SLA deadline per channel, in hours after ticket creation.
var slaHours = map[string]int64{
	"email": 48, "portal": 48, "phone": 8, "chat": 2, "system": 72, "walkIn": 24, "letter": 120, "": 48,
}

// conversational channels give their tickets a conversationId.
var conversational = map[string]bool{"chat": true, "phone": true, "portal": true}

// Status action details, by transition.
var (
	pendingDetails = texts("waitingForCustomer", "waitingForCustomer", "waitingForThirdParty", "waitingForInternalDepartment", "scheduledCallback", "waitingForPayment")
	resumeDetails  = texts("customerReplied", "dueDateReached", "thirdPartyReplied")
	openDetails    = texts("escalated", "priorityChanged", "assignedToTeam")
	reopenDetail   = newText("reopenedByCustomer")
)

// fieldIDs are the catalogue positions of the fields the generator fills.
type fieldIDs struct {
	date, name, ticketID, conversationID, userID, action, duration,
	durationAfterWork, reOpened, status, aiAgent, topic, subTopic, allTags,
	tags, channel, department, teams, email, rawData, aiAutomationLevel,
	customerIdentifiedCorrectly, tagsIdentifiedCorrectly,
	textAssistanceAccuracy, aiAgentsUsed, skippedTicket,
	netSecondsClosedAfterSLA, closingDateForSLA, statusActionDetail,
	pendingDueBy, pendingSeconds, netPendingSeconds, firstPendingAt,
	userWorklogID, timesSetToOpen int
}

// resolveFields finds every field the generator fills in the catalogue.
func resolveFields() (fieldIDs, error) {
	var f fieldIDs
	var errs []error
	for _, p := range []struct {
		name string
		dst  *int
	}{
		{"date", &f.date}, {"name", &f.name}, {"ticketId", &f.ticketID},
		{"conversationId", &f.conversationID}, {"userId", &f.userID},
		{"action", &f.action}, {"duration", &f.duration},
		{"durationAfterWork", &f.durationAfterWork}, {"reOpened", &f.reOpened},
		{"status", &f.status}, {"aiAgent", &f.aiAgent}, {"topic", &f.topic},
		{"subTopic", &f.subTopic}, {"allTags", &f.allTags}, {"tags", &f.tags},
		{"channel", &f.channel}, {"department", &f.department},
		{"teams", &f.teams}, {"email", &f.email}, {"rawData", &f.rawData},
		{"aiAutomationLevel", &f.aiAutomationLevel},
		{"customerIdentifiedCorrectly", &f.customerIdentifiedCorrectly},
		{"tagsIdentifiedCorrectly", &f.tagsIdentifiedCorrectly},
		{"textAssistanceAccuracy", &f.textAssistanceAccuracy},
		{"aiAgentsUsed", &f.aiAgentsUsed}, {"skippedTicket", &f.skippedTicket},
		{"netSecondsClosedAfterSLA", &f.netSecondsClosedAfterSLA},
		{"closingDateForSLA", &f.closingDateForSLA},
		{"statusActionDetail", &f.statusActionDetail},
		{"pendingDueBy", &f.pendingDueBy}, {"pendingSeconds", &f.pendingSeconds},
		{"netPendingSeconds", &f.netPendingSeconds},
		{"firstPendingAt", &f.firstPendingAt}, {"userWorklogId", &f.userWorklogID},
		{"timesSetToOpen", &f.timesSetToOpen},
	} {
		i, err := fieldIndex(p.name)
		errs = append(errs, err)
		*p.dst = i
	}
	return f, errors.Join(errs...)
}

// generator holds the state of one Generate call.
type generator struct {
	rows  int
	seed  uint64
	r     *rand.Rand
	w     *world
	clock *clock
	enc   *encoder
	f     fieldIDs
	ev    event

	channels     []string // the catalogue's channel enum
	channelTexts []text   // channels, encoded
	channelPick  picker   // index into channels; len(channels) means null
	pool         []ticket
	nextTicketID int64
	nextConvID   int64

	// Per-ticket payloads draw from their own generator, reseeded per
	// ticket, so a payload depends on the seed and the ticket alone.
	tpcg           *rand.PCG
	tr             *rand.Rand
	rawHead, rawBd []byte
}

// newGenerator prepares the tables for opts.
func newGenerator(opts Options) (*generator, error) {
	f, err := resolveFields()
	if err != nil {
		return nil, err
	}
	chField, ok := data.Lookup("channel")
	if !ok || len(chField.Enum) == 0 {
		return nil, errors.New("catalogue has no channel enum")
	}
	acField, _ := data.Lookup("action")
	for _, a := range actionNames {
		if !acField.AllowsEnum(a) {
			return nil, fmt.Errorf("catalogue's action enum lacks %q", a)
		}
	}
	end := opts.End
	if end.IsZero() {
		end = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
	}
	seed := uint64(opts.Seed)
	g := &generator{
		rows:  opts.Rows,
		seed:  seed,
		r:     rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		w:     newWorld(),
		clock: newClock(end),
		enc:   newEncoder(),
		f:     f,
		ev:    make(event, data.FieldCount()),

		channels:     chField.Enum,
		channelTexts: texts(chField.Enum...),
		nextTicketID: 10000,
		nextConvID:   500000,
		tpcg:         rand.NewPCG(0, 0),
	}
	g.tr = rand.New(g.tpcg)
	weights := make([]float64, len(g.channels)+1)
	for i, c := range g.channels {
		weights[i] = 1
		if w, ok := channelWeights[c]; ok {
			weights[i] = w
		}
	}
	weights[len(g.channels)] = noChannelWeight
	g.channelPick = newPicker(weights)

	g.pool = make([]ticket, poolSize(opts.Rows))
	// One allocation backs every payload buffer; a payload that outgrows
	// its slot (none does with the current texts) gets its own.
	arena := make([]byte, len(g.pool)*rawSlot)
	for i := range g.pool {
		g.pool[i].raw = arena[i*rawSlot : i*rawSlot : (i+1)*rawSlot]
	}
	return g, nil
}

// rawSlot is the buffer size reserved for one encoded rawData payload.
const rawSlot = 1536

// poolSize is the number of tickets open at a time. It scales with the data
// set so that a ticket's events are hours to days apart at any size, up to a
// cap that bounds memory.
func poolSize(rows int) int {
	return min(max(rows/1500, 8), 4096)
}

// channel names ticket t's channel, "" for none.
func (g *generator) channel(t *ticket) string {
	if t.channel < 0 {
		return ""
	}
	return g.channels[t.channel]
}

// newTicket replaces t with a fresh ticket created at now.
func (g *generator) newTicket(t *ticket, now int64) {
	r := g.r
	g.nextTicketID += 1 + r.Int64N(3)
	*t = ticket{
		live:    true,
		id:      g.nextTicketID,
		created: now,
		status:  statusOpen,
		topic:   r.IntN(len(topics)),
		raw:     t.raw[:0],
	}
	t.channel = g.channelPick.pick(r)
	if t.channel == len(g.channels) {
		t.channel = -1
	}
	ch := g.channel(t)
	if conversational[ch] {
		g.nextConvID += 1 + r.Int64N(5)
		t.conversationID = g.nextConvID
	}
	switch x := r.IntN(100); {
	case x < 3:
		t.tagSet = -1
	case x < 7:
		t.tagSet = g.w.topicOnly[t.topic]
	default:
		pairs := g.w.topicPairs[t.topic]
		t.tagSet = pairs[r.IntN(len(pairs))]
		if x >= 91 { // a third tag
			t.tagSet += 1 + r.IntN(len(extraTags))
		}
	}
	t.department = topics[t.topic].department
	if r.IntN(10) == 0 {
		t.department = 0 // first-level customer care handles it
	}
	t.agent = g.w.byDepartment[t.department].pick(r)
	if r.IntN(100) < 85 {
		t.slaDue = now + slaHours[ch]*3600
	}
	t.level = int64(levelPick.pick(r))
	t.aiUsed = g.w.aiUsedByLevel[t.level].pick(r)
	t.customerOK = bit(r.IntN(100) < 92)
	t.tagsOK = bit(r.IntN(100) < 87)

	g.tpcg.Seed(g.seed, uint64(t.id))
	g.rawHead, g.rawBd = buildRaw(t, g.tr, g.w, ch, g.rawHead, g.rawBd)
}

// next fills g.ev with event i.
func (g *generator) next(i int) {
	r := g.r
	now := g.clock.at((float64(i) + r.Float64()) / float64(g.rows))
	hour := now % 86400 / 3600
	weekday := (now/86400 + 4) % 7 // 1970-01-01 was a Thursday; 0 is Sunday
	offHours := hour < 7 || hour >= 20 || weekday == 0 || weekday == 6

	t := &g.pool[r.IntN(len(g.pool))]
	var act action
	switch {
	case !t.live, r.IntN(100) < 12, t.status == statusClosed && r.IntN(100) < 85:
		g.newTicket(t, now)
		act = g.firstAction(t, offHours)
	case t.status == statusClosed:
		act = actStatus // reopened
	default:
		act = g.followAction(offHours)
	}

	e, f := g.ev, &g.f
	e.reset()
	setInt(e, f.date, now)
	setInt(e, f.userWorklogID, int64(i+1))
	setText(e, f.action, actionTexts[act])
	setInt(e, f.ticketID, t.id)
	if t.conversationID != 0 {
		setInt(e, f.conversationID, t.conversationID)
	}
	if t.channel >= 0 {
		setText(e, f.channel, g.channelTexts[t.channel])
	}
	setText(e, f.department, g.w.departments[t.department])
	setRaw(e, f.rawData, t.raw)
	if t.tagSet >= 0 {
		ts := &g.w.tagSets[t.tagSet]
		setText(e, f.topic, ts.topic)
		if ts.subTopic.s != "" {
			setText(e, f.subTopic, ts.subTopic)
		}
		setText(e, f.allTags, ts.allTags)
		setRaw(e, f.tags, ts.tagsJSON)
	} else {
		setRaw(e, f.tags, emptyList)
	}
	setInt(e, f.aiAutomationLevel, t.level)
	if t.level > 0 {
		setInt(e, f.customerIdentifiedCorrectly, t.customerOK)
		setInt(e, f.tagsIdentifiedCorrectly, t.tagsOK)
	}
	setRaw(e, f.aiAgentsUsed, g.w.aiAgentsUsed[t.aiUsed])
	if t.slaDue != 0 {
		setInt(e, f.closingDateForSLA, t.slaDue)
	}

	// Who acted: an AI agent alone, or a human (possibly taking over the
	// ticket from a colleague).
	human := true
	if act == actAuto {
		ai := 0 // triage
		if t.level >= 2 && topics[t.topic].department == 1 {
			ai = 1 // the billing bot answers billing tickets itself
		}
		setText(e, f.aiAgent, g.w.aiAgents[ai])
		human = r.IntN(100) < 15 // acting on behalf of the assignee
	} else if r.IntN(100) < 12 {
		t.agent = g.w.byDepartment[t.department].pick(r)
	}
	if human {
		a := &g.w.agents[t.agent]
		setText(e, f.name, a.name)
		setInt(e, f.userID, a.userID)
		setText(e, f.email, a.email)
		setRaw(e, f.teams, a.teams)
	} else {
		setRaw(e, f.teams, emptyList)
	}

	setInt(e, f.duration, g.duration(act, t))
	setInt(e, f.durationAfterWork, g.afterWork(act, t))
	skipped := int64(0)
	if act == actRead && r.IntN(100) < 4 {
		skipped = 1
	}
	setInt(e, f.skippedTicket, skipped)

	switch act {
	case actWrite:
		if t.status == statusOpen {
			t.status = statusActive
		}
		if t.level > 0 && r.IntN(100) < 60 {
			setText(e, f.aiAgent, g.w.aiAgents[4]) // text assistant
			// Accuracy clusters near the top with a tail of poor drafts.
			acc := 1 - math.Abs(r.NormFloat64()*0.12)
			acc = math.Round(max(acc, 0)*100) / 100
			e[f.textAssistanceAccuracy] = value{set: true, f: acc}
		}
	case actClose:
		if t.slaDue != 0 {
			setInt(e, f.netSecondsClosedAfterSLA, now-t.slaDue-t.netPending)
		}
		t.status = statusClosed
	case actAuto:
		if t.level >= 4 && r.IntN(100) < 25 {
			t.status = statusClosed // fully automated answer
		}
	case actStatus:
		g.statusChange(t, now)
	}
	setText(e, f.status, statusTexts[t.status])
	setInt(e, f.reOpened, bit(t.reopened))
	setInt(e, f.timesSetToOpen, t.timesSetToOpen)
}

// levelPick draws a ticket's aiAutomationLevel (0–5): most tickets are
// partly automated, few fully.
var levelPick = newPicker([]float64{3, 3, 4, 5, 3, 2})

// emptyList is an encoded empty list.
var emptyList = []byte("[]")

// firstAction is the action of a ticket's first event.
func (g *generator) firstAction(t *ticket, offHours bool) action {
	switch g.channel(t) {
	case "phone", "walkIn", "chat":
		if g.r.IntN(100) < 60 {
			return actWrite
		}
		return actRead
	}
	if offHours || g.r.IntN(100) < 55 {
		return actAuto
	}
	return actRead
}

// Action weights of follow-up events, indexed by action, in office hours
// and off hours.
var (
	followOffice = newPicker([]float64{actClose: 12, actRead: 34, actStatus: 14, actWrite: 27, actAuto: 13})
	followOff    = newPicker([]float64{actClose: 6, actRead: 14, actStatus: 6, actWrite: 12, actAuto: 62})
)

// followAction is the action of a later event on an open ticket.
func (g *generator) followAction(offHours bool) action {
	p := followOffice
	if offHours {
		p = followOff
	}
	return action(p.pick(g.r))
}

// statusChange applies a statusAction to t and fills the pending fields,
// which only status actions carry.
func (g *generator) statusChange(t *ticket, now int64) {
	r, e, f := g.r, g.ev, &g.f
	switch t.status {
	case statusClosed:
		setText(e, f.statusActionDetail, reopenDetail)
		t.status = statusOpen
		t.reopened = true
		t.timesSetToOpen++
	case statusPending:
		setText(e, f.statusActionDetail, resumeDetails[r.IntN(len(resumeDetails))])
		spent := now - t.pendingSince
		t.pendingTotal += spent
		// Pending time outside business hours does not count.
		t.netPending += spent * int64(25+r.IntN(20)) / 100
		setInt(e, f.pendingDueBy, t.pendingDueBy)
		t.status = statusOpen
		t.timesSetToOpen++
	default:
		if r.IntN(100) < 25 {
			setText(e, f.statusActionDetail, openDetails[r.IntN(len(openDetails))])
			t.status = statusOpen
			break
		}
		setText(e, f.statusActionDetail, pendingDetails[r.IntN(len(pendingDetails))])
		t.status = statusPending
		t.pendingSince = now
		if t.firstPending == 0 {
			t.firstPending = now
		}
		t.pendingDueBy = now + (24+r.Int64N(9*24))*3600
		setInt(e, f.pendingDueBy, t.pendingDueBy)
	}
	setInt(e, f.pendingSeconds, t.pendingTotal)
	setInt(e, f.netPendingSeconds, t.netPending)
	if t.firstPending != 0 {
		setInt(e, f.firstPendingAt, t.firstPending)
	}
}

// durations are the median duration in seconds, the spread (sigma of the
// log) and the bounds per action.
var durations = [...]struct{ median, sigma, lo, hi float64 }{
	actRead:   {45, 0.9, 2, 1800},
	actWrite:  {240, 0.7, 20, 3600},
	actStatus: {12, 0.6, 1, 300},
	actClose:  {30, 0.8, 2, 600},
	actAuto:   {4, 0.5, 1, 60},
}

// duration draws a log-normal duration for the action; talking takes longer
// than writing.
func (g *generator) duration(act action, t *ticket) int64 {
	d := durations[act]
	v := d.median * math.Exp(d.sigma*g.r.NormFloat64())
	if ch := g.channel(t); act == actWrite && (ch == "phone" || ch == "walkIn") {
		v *= 1.6
	}
	return int64(math.Round(min(max(v, d.lo), d.hi)))
}

// afterWork draws the after-work time: only humans writing or closing have
// any, and only about half of the time.
func (g *generator) afterWork(act action, t *ticket) int64 {
	if act != actWrite && act != actClose || g.r.IntN(100) < 45 {
		return 0
	}
	v := 60 * math.Exp(0.8*g.r.NormFloat64())
	if g.channel(t) == "phone" {
		v *= 2
	}
	return int64(math.Round(min(max(v, 5), 900)))
}

// setInt sets an integer, flag or timestamp (Unix seconds) field.
func setInt(e event, i int, v int64) { e[i] = value{set: true, i: v} }

// setText sets a string field.
func setText(e event, i int, v text) { e[i] = value{set: true, raw: v.q} }

// setRaw sets a string or list field to its JSON encoding.
func setRaw(e event, i int, raw []byte) { e[i] = value{set: true, raw: raw} }

func bit(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

package demo

import (
	"math/rand/v2"
	"strings"
)

// worldSeed fixes the agents, teams and AI agents. It does not depend on
// Options.Seed so that dumps generated with different seeds describe the same
// staff: userId 101 is the same person in every demo store.
const worldSeed = 0x5eed_a9e7_5

// agentCount is the number of human agents in the demo company.
const agentCount = 200

// agent is one human customer-service agent.
type agent struct {
	userID     int64
	name       text
	email      text
	department int
	teams      []byte // encoded list
}

// topic is a top-level tag with its sub-topics and the department that
// handles it.
type topic struct {
	name       string
	department int
	subTopics  []string
	// subjects are ticket subject lines; body are sentences a customer
	// writes about this topic.
	subjects []string
	body     []string
}

// tagSet is one precomputed tag combination, so that events share the
// slices and strings instead of allocating them.
type tagSet struct {
	topic, subTopic text // subTopic.s is "" when the ticket has only a topic
	allTags         text
	tags            []string
	tagsJSON        []byte // tags, encoded
}

// aiAgentDef is an AI agent: its display name (aiAgent) and identifier
// (aiAgentsUsed).
type aiAgentDef struct {
	name string
	id   string
}

// departments handle tickets; each topic belongs to one of them.
var departments = []string{
	"Customer care", "Billing", "Technical support", "Sales", "Complaints management", "Back office",
}

// departmentTeams is the home team of each department, by index.
var departmentTeams = []string{
	"Customer care", "Billing", "Tech support 1st level", "Sales inbound", "Complaints", "Back office",
}

// extraTeams are cross-cutting teams an agent may also belong to.
var extraTeams = []string{
	"Chat team", "Phone team", "Escalations", "Tech support 2nd level", "Onboarding", "Night shift", "Key accounts",
}

// agentFirstNames and agentLastNames combine into the agents' names. They
// are ASCII so that the derived e-mail addresses are plain.
var agentFirstNames = []string{
	"Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hannah", "Ivan", "Julia",
	"Karim", "Laura", "Max", "Nina", "Oskar", "Paula", "Quentin", "Rosa", "Samuel", "Tina",
	"Uwe", "Vera", "Wanda", "Xaver", "Yusuf", "Zoe", "Lena", "Jonas", "Mia", "Noah",
	"Sofia", "Elias", "Amelie", "Luca", "Leonie", "Tim", "Marie", "Paul", "Ella", "Jan",
}

var agentLastNames = []string{
	"Schmidt", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann", "Koch", "Richter",
	"Klein", "Wolf", "Neumann", "Schwarz", "Braun", "Zimmermann", "Hartmann", "Krause", "Lange", "Walter",
	"Peters", "Lehmann", "Kaiser", "Fuchs", "Herrmann", "Lang", "Weiss", "Jung", "Hahn", "Vogel",
	"Roth", "Frank", "Berger", "Winter", "Sommer", "Brandt", "Haas", "Schreiber", "Graf", "Dietrich",
}

// aiAgents are the AI agents of the demo company. Index 0 is the triage
// agent that runs on every ticket it touches.
var aiAgents = []aiAgentDef{
	{"Triage Assistant", "triage-assistant"},
	{"Billing Bot", "billing-bot"},
	{"Meter Reading Bot", "meter-reading-bot"},
	{"Contract Assistant", "contract-assistant"},
	{"Text Assistant", "text-assistant"},
	{"Identity Check", "identity-check"},
}

// topics are the ~15 top-level tags of an energy supplier's customer service.
var topics = []topic{
	{name: "Billing", department: 1,
		subTopics: []string{"Payment reminder", "Invoice correction", "Refund", "Final invoice"},
		subjects:  []string{"Question about my invoice", "Payment reminder received", "Wrong amount on bill", "Refund still missing"},
		body: []string{
			"I received a payment reminder although I paid the invoice on time.",
			"The amount on my latest invoice is much higher than last year and I do not understand why.",
			"Could you please check the consumption figures on the bill, they look wrong to me.",
			"My refund from the annual statement has not arrived yet.",
		}},
	{name: "Meter reading", department: 0,
		subTopics: []string{"Submit reading", "Estimated reading", "Meter replacement"},
		subjects:  []string{"Meter reading", "My meter reading for this year", "Estimated consumption is wrong"},
		body: []string{
			"Please find my current meter reading below, taken this morning.",
			"You estimated my consumption although I sent the reading in time.",
			"The technician replaced my meter last week, the old reading was noted on the form.",
		}},
	{name: "Contract", department: 3,
		subTopics: []string{"New contract", "Cancellation", "Tariff change", "Contract transfer"},
		subjects:  []string{"Cancellation of my contract", "Switching to a different tariff", "New contract request"},
		body: []string{
			"I would like to cancel my contract at the next possible date.",
			"Please switch me to the green energy tariff from next month on.",
			"I want to transfer the contract to my partner who lives at the same address.",
		}},
	{name: "Payment", department: 1,
		subTopics: []string{"Direct debit", "Bank details change", "Failed payment"},
		subjects:  []string{"New bank details", "Direct debit mandate", "Payment did not go through"},
		body: []string{
			"I have a new bank account, please use it for the direct debit from now on.",
			"The direct debit failed because of an error at my bank, please try again.",
			"I would like to pay by bank transfer instead of direct debit.",
		}},
	{name: "Installments", department: 1,
		subTopics: []string{"Adjust amount", "Payment plan"},
		subjects:  []string{"Monthly installment too high", "Request for a payment plan"},
		body: []string{
			"My monthly installment is too high for my actual consumption, please lower it.",
			"I cannot pay the full amount at once and would like to agree on a payment plan.",
		}},
	{name: "Moving", department: 0,
		subTopics: []string{"Move in", "Move out", "Address change"},
		subjects:  []string{"I am moving", "Change of address", "Moving out notice"},
		body: []string{
			"I am moving to a new flat at the end of the month and want to keep my contract.",
			"Please note my new postal address for all future letters.",
			"I moved out last week, the final meter reading is attached.",
		}},
	{name: "Technical", department: 2,
		subTopics: []string{"Smart meter", "Power outage", "Heat pump"},
		subjects:  []string{"Smart meter not sending data", "Power outage in my street", "Heat pump tariff"},
		body: []string{
			"My smart meter has stopped sending data to the app since Monday.",
			"There has been a power outage in our street since last night.",
			"Does the heat pump tariff require a separate meter?",
		}},
	{name: "Online account", department: 2,
		subTopics: []string{"Login problem", "Password reset", "App feedback"},
		subjects:  []string{"Cannot log in", "Password reset link expired", "Feedback on the app"},
		body: []string{
			"I cannot log into the customer portal, it says my account is locked.",
			"The password reset link expired before I could use it.",
			"The new version of the app crashes when I open the consumption chart.",
		}},
	{name: "Complaint", department: 4,
		subTopics: []string{"Service quality", "Billing dispute", "Long waiting time"},
		subjects:  []string{"Formal complaint", "Very disappointed", "Nobody answers my emails"},
		body: []string{
			"This is the third time I am writing about the same problem and nobody answers.",
			"I waited for forty minutes on the hotline yesterday and was then disconnected.",
			"I do not agree with the invoice and I want a written explanation.",
		}},
	{name: "Tariff", department: 3,
		subTopics: []string{"Price change", "Green energy", "Bonus"},
		subjects:  []string{"Price increase letter", "Green energy options", "Where is my bonus?"},
		body: []string{
			"I received a letter about a price increase and want to know the reasons.",
			"Is your electricity certified as coming from renewable sources?",
			"The new customer bonus promised on your website was not credited.",
		}},
	{name: "Solar", department: 2,
		subTopics: []string{"Feed-in", "Installation", "Battery storage"},
		subjects:  []string{"Feed-in compensation", "Solar panel installation", "Battery storage offer"},
		body: []string{
			"Our new solar panels went live last month, how is the feed-in compensated?",
			"I am interested in a solar installation on my roof, can you send an offer?",
		}},
	{name: "E-mobility", department: 3,
		subTopics: []string{"Wallbox", "Charging card"},
		subjects:  []string{"Wallbox installation", "Charging card not working"},
		body: []string{
			"I would like to order a wallbox together with the car charging tariff.",
			"My charging card is rejected at public charging stations.",
		}},
	{name: "Dunning", department: 5,
		subTopics: []string{"Blocking notice", "Debt collection"},
		subjects:  []string{"Notice of supply interruption", "Letter from a collection agency"},
		body: []string{
			"I received a notice that my supply will be interrupted, but I paid everything.",
			"A debt collection agency contacted me about an amount I never owed you.",
		}},
	{name: "Data protection", department: 5,
		subTopics: []string{"Data access request", "Deletion request", "Marketing opt-out"},
		subjects:  []string{"Request for data access", "Please delete my data", "Stop sending advertising"},
		body: []string{
			"Under the data protection regulation I request a copy of all data you store about me.",
			"Please delete all my personal data now that the contract has ended.",
			"Please stop sending me advertising by email and post.",
		}},
	{name: "General inquiry", department: 0,
		subTopics: []string{"Opening hours", "Contact details", "Other"},
		subjects:  []string{"Short question", "General question", "Contact"},
		body: []string{
			"When is your service centre in the city open on Saturdays?",
			"Who is my contact person for questions about my contract?",
		}},
}

// extraTags are occasionally added as a third tag.
var extraTags = []string{"Urgent", "VIP", "Callback requested", "Follow-up"}

// world is the fixed cast of the demo company plus the precomputed lookup
// tables the generator samples from.
type world struct {
	departments []text
	aiAgents    []text // the aiAgents' names
	agents      []agent
	// byDepartment picks an agent index of a department, weighted by how
	// much each agent works.
	byDepartment []picker
	// tagSets are all tag combinations. For topic t, topicPairs[t] indexes
	// its [topic, subTopic] sets, each followed by len(extraTags) sets with
	// a third tag; topicOnly[t] indexes the set [topic].
	tagSets    []tagSet
	topicPairs [][]int
	topicOnly  []int
	// aiAgentsUsed lists the combinations of AI agent identifiers an event
	// may carry (encoded), aiUsedByLevel[level] the picker over them for an
	// automation level.
	aiAgentsUsed  [][]byte
	aiUsedByLevel []picker
}

// newWorld builds the fixed cast. It is deterministic and independent of the
// generator's seed.
func newWorld() *world {
	r := rand.New(rand.NewPCG(worldSeed, worldSeed>>7))
	w := &world{departments: texts(departments...)}
	for _, a := range aiAgents {
		w.aiAgents = append(w.aiAgents, newText(a.name))
	}

	// Distinct names: a shuffled prefix of all first × last name pairs.
	pairs := r.Perm(len(agentFirstNames) * len(agentLastNames))[:agentCount]
	deptWeights := []float64{0.30, 0.22, 0.18, 0.12, 0.08, 0.10}
	deptPick := newPicker(deptWeights)
	agentWeights := make([][]float64, len(departments))
	agentIdx := make([][]int, len(departments))
	for i, p := range pairs {
		first := agentFirstNames[p/len(agentLastNames)]
		last := agentLastNames[p%len(agentLastNames)]
		// The first agents are spread round-robin so that every department
		// has staff; the rest follow the department sizes.
		d := i
		if i >= len(departments) {
			d = deptPick.pick(r)
		}
		teams := []string{departmentTeams[d]}
		for n := r.IntN(3); n > 0; n-- {
			t := extraTeams[r.IntN(len(extraTeams))]
			if !contains(teams, t) {
				teams = append(teams, t)
			}
		}
		w.agents = append(w.agents, agent{
			userID:     int64(101 + i),
			name:       newText(first + " " + last),
			email:      newText(strings.ToLower(first) + "." + strings.ToLower(last) + "@example.com"),
			department: d,
			teams:      encodeList(teams),
		})
		// Part-timers and full-timers: activity varies by a factor of ~5.
		agentWeights[d] = append(agentWeights[d], 0.4+1.6*r.Float64())
		agentIdx[d] = append(agentIdx[d], i)
	}
	for d := range departments {
		p := newPicker(agentWeights[d])
		for k, v := range p.table {
			p.table[k] = uint16(agentIdx[d][v])
		}
		w.byDepartment = append(w.byDepartment, p)
	}

	for _, t := range topics {
		var ids []int
		for _, s := range t.subTopics {
			ids = append(ids, len(w.tagSets))
			w.tagSets = append(w.tagSets, newTagSet(t.name, s, ""))
			for _, x := range extraTags {
				w.tagSets = append(w.tagSets, newTagSet(t.name, s, x))
			}
		}
		w.topicPairs = append(w.topicPairs, ids)
		w.topicOnly = append(w.topicOnly, len(w.tagSets))
		w.tagSets = append(w.tagSets, newTagSet(t.name, "", ""))
	}

	// AI agent combinations: more automation, more agents involved.
	combos := [][]string{
		{},
		{aiAgents[0].id},
		{aiAgents[0].id, aiAgents[5].id},
		{aiAgents[4].id},
		{aiAgents[0].id, aiAgents[1].id},
		{aiAgents[0].id, aiAgents[2].id},
		{aiAgents[0].id, aiAgents[3].id},
		{aiAgents[0].id, aiAgents[4].id, aiAgents[5].id},
		{aiAgents[0].id, aiAgents[1].id, aiAgents[4].id, aiAgents[5].id},
	}
	for _, c := range combos {
		w.aiAgentsUsed = append(w.aiAgentsUsed, encodeList(c))
	}
	for level := 0; level <= 5; level++ {
		wts := make([]float64, len(combos))
		wts[0] = float64(6 - level*level) // level 0: mostly none; 3+: never none
		if wts[0] < 0 {
			wts[0] = 0
		}
		for i := 1; i < len(combos); i++ {
			// Larger combinations grow likelier with the level.
			wts[i] = 1 + float64(level*len(combos[i]))/2
		}
		if level == 0 {
			for i := 1; i < len(combos); i++ {
				wts[i] = 0
			}
			wts[3] = 1 // text assistance only
		}
		w.aiUsedByLevel = append(w.aiUsedByLevel, newPicker(wts))
	}
	return w
}

// newTagSet builds a tag combination; sub and extra may be "".
func newTagSet(topic, sub, extra string) tagSet {
	tags := []string{topic}
	if sub != "" {
		tags = append(tags, sub)
	}
	if extra != "" {
		tags = append(tags, extra)
	}
	return tagSet{
		topic: newText(topic), subTopic: newText(sub), allTags: newText(strings.Join(tags, ", ")),
		tags: tags, tagsJSON: encodeList(tags),
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// pickerBits is the resolution of picker tables: 2^12 slots.
const pickerBits = 12

// picker samples an index with probability proportional to its weight in
// O(1): a table of 4096 slots, each weight owning a share of them. Every
// positive weight owns at least one slot, so no choice is unreachable.
type picker struct {
	table []uint16
}

// newPicker builds a picker over weights (non-negative, not all zero).
func newPicker(weights []float64) picker {
	const n = 1 << pickerBits
	var sum float64
	for _, w := range weights {
		sum += w
	}
	positive := 0
	for _, w := range weights {
		if w > 0 {
			positive++
		}
	}
	table := make([]uint16, 0, n)
	var acc float64
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		positive--
		acc += w
		end := int(acc / sum * n)
		// At least one slot for this weight, and one left for each
		// positive weight still to come.
		end = max(end, len(table)+1)
		end = min(end, n-positive)
		for len(table) < end {
			table = append(table, uint16(i))
		}
	}
	// Rounding may leave the last slots unfilled; give them to the last
	// positive weight.
	for len(table) < n {
		table = append(table, table[len(table)-1])
	}
	return picker{table: table}
}

// pick draws one index.
func (p picker) pick(r *rand.Rand) int {
	return int(p.table[r.Uint32()>>(32-pickerBits)])
}

package privacy

import (
	"encoding/hex"
	"strconv"
)

// pseudonymPrefix starts every pseudonym.
const pseudonymPrefix = "Agent-"

// namePrefix starts the HMAC input of a row without a userId.
const namePrefix = "name:"

// pseudonymHex is the number of hex digits after the prefix (40 bits of the
// HMAC: collisions between two of 10,000 agents have odds of about 1 in 20,000).
const pseudonymHex = 10

// pseudonymLen is the byte length of every pseudonym.
const pseudonymLen = len(pseudonymPrefix) + pseudonymHex

// IsPseudonym reports whether s has the form of a pseudonym, "Agent-"
// followed by 10 lower-case hex digits: ingest refuses such names, since
// only an export at level none may overwrite stored names (SPEC §8).
func IsPseudonym(s []byte) bool {
	if len(s) != pseudonymLen || string(s[:len(pseudonymPrefix)]) != pseudonymPrefix {
		return false
	}
	for _, c := range s[len(pseudonymPrefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxCached bounds each pseudonym cache; a cache that reaches it is cleared
// (a store has far fewer agents; this only caps a pathological input).
const maxCached = 1 << 16

// pseudonym holds one pseudonym, prefix included: a fixed-size value that
// the transform stores with one array assignment, no copy call.
type pseudonym [pseudonymLen]byte

// slotBits sizes the direct-mapped cache in front of the userId map: 1,024
// slots hold a typical store's agents, and a slot hit costs a multiply and a
// compare where a map lookup costs a hash (it was half the transform's time).
const slotBits = 10

// idSlot is one entry of the direct-mapped cache.
type idSlot struct {
	id  int64
	set bool
	ps  pseudonym
}

// slotOf spreads user ids over the slots (Fibonacci hashing), so that ids
// with a common stride do not share a slot.
func slotOf(id int64) uint64 {
	return (uint64(id) * 0x9E3779B97F4A7C15) >> (64 - slotBits)
}

// Pseudonym returns the pseudonym of a user: "Agent-" followed by the first
// 10 hex digits of HMAC-SHA256(key, userId in decimal), or of "name:" and
// the name when userID is nil. The same key gives the same pseudonym in every process, so
// pseudonyms are stable across requests and restarts; without the key they
// cannot be computed from the user id.
func (p *Policy) Pseudonym(userID *int64, name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ps pseudonym
	if userID != nil {
		ps = p.byID(*userID)
	} else {
		ps = p.byName(name)
	}
	return string(ps[:])
}

// byID returns the pseudonym of a user id. The caller holds p.mu.
func (p *Policy) byID(id int64) pseudonym {
	if p.slots == nil {
		p.slots = new([1 << slotBits]idSlot)
	}
	slot := &p.slots[slotOf(id)]
	if slot.set && slot.id == id {
		return slot.ps
	}
	ps, ok := p.ids[id]
	if !ok {
		ps = p.compute(strconv.AppendInt(p.num[:0], id, 10))
		if len(p.ids) >= maxCached {
			clear(p.ids)
		}
		p.ids[id] = ps
	}
	*slot = idSlot{id: id, set: true, ps: ps}
	return ps
}

// byName returns the pseudonym of a name, for rows without a user id. The
// caller holds p.mu.
func (p *Policy) byName(name string) pseudonym {
	if ps, ok := p.names[name]; ok {
		return ps
	}
	// "name:" keeps a name from ever sharing a pseudonym with a user id
	// (the name "42" and the userId 42), SPEC §6.
	ps := p.compute(append([]byte(namePrefix), name...))
	if len(p.names) >= maxCached {
		clear(p.names)
	}
	// The name may point into an Arrow buffer that is released after the
	// batch; the map keeps its own copy.
	p.names[string([]byte(name))] = ps
	return ps
}

// compute hashes msg under the key. The caller holds p.mu.
func (p *Policy) compute(msg []byte) pseudonym {
	p.mac.Reset()
	p.mac.Write(msg)
	sum := p.mac.Sum(p.sum[:0])
	var ps pseudonym
	copy(ps[:], pseudonymPrefix)
	hex.Encode(ps[len(pseudonymPrefix):], sum[:pseudonymHex/2])
	return ps
}

package data

import (
	"context"
	"time"
)

// Publisher publishes the store's committed states as something other
// engines read, and keeps the part files those states list: the Iceberg
// table of package data/iceberg (SPEC §13). The store calls it only while it
// holds the writer lock, so a Publisher never sees two writers.
//
// The store's manifest stays the commit point: a publish that fails does
// not undo the commit. It is logged and counted (Store.PublishFailures), and
// the next Open or commit publishes again.
type Publisher interface {
	// Publish makes snap, the committed state, the published one. The
	// store calls it right after every commit and from Open, so it must
	// do nothing when snap's generation is already published, and must
	// bring a publication that is several generations behind up to snap
	// in one step.
	Publish(ctx context.Context, snap Snapshot) error
	// Referenced returns the absolute paths of the part files that a
	// published state still retained lists. The store deletes no retired
	// file among them, whatever its grace and its readers' leases.
	Referenced(ctx context.Context) (map[string]bool, error)
}

// publishTimeout bounds one publish, so that a stuck publisher cannot hold
// the writer lock for ever.
const publishTimeout = 5 * time.Minute

// publish publishes snap when the store has a Publisher. The caller holds
// the writer lock. A failure is logged and counted, never returned: the
// commit stands, and the next Open or commit publishes again.
func (s *Store) publish(snap Snapshot) {
	if s.publisher == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := s.publisher.Publish(ctx, snap); err != nil {
		s.publishFailures.Add(1)
		s.log.Error("store: cannot publish the committed state; the next open or commit publishes it",
			"generation", snap.Generation, "err", err)
	}
}

// PublishFailures counts the publishes that failed (each one is logged).
func (s *Store) PublishFailures() int64 { return s.publishFailures.Load() }

// referenced returns the part files (absolute paths) that the Publisher's
// retained states list, and false when it cannot tell: then the caller
// deletes no retired file.
func (s *Store) referenced() (map[string]bool, bool) {
	if s.publisher == nil {
		return nil, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	ref, err := s.publisher.Referenced(ctx)
	if err != nil {
		s.cleanupFailures.Add(1)
		s.log.Warn("store cleanup: cannot list the files published snapshots still reference; keeping retired files", "err", err)
		return nil, false
	}
	return ref, true
}

// unreferenced returns the paths (relative to the store) among retired
// that no published state retains: those the caller may delete.
func (s *Store) unreferenced(retired []string) []string {
	if len(retired) == 0 || s.publisher == nil {
		return retired
	}
	ref, ok := s.referenced()
	if !ok {
		return nil
	}
	var out []string
	for _, p := range retired {
		if !ref[s.abs(p)] {
			out = append(out, p)
		}
	}
	return out
}

// keepReferenced takes out of a planned commit's deletions (obsolete,
// replaced) the files that a published state still retains: obsolete ones
// go back on next's retired list, to be deleted by a later commit or sweep;
// replaced ones are on it already.
func (s *Store) keepReferenced(base, next manifest, obsolete, replaced []string) (manifest, []string, []string) {
	if s.publisher == nil || len(obsolete)+len(replaced) == 0 {
		return next, obsolete, replaced
	}
	ref, ok := s.referenced()
	keep := func(p string) bool { return !ok || ref[s.abs(p)] }
	var del []string
	for _, p := range obsolete {
		if !keep(p) {
			del = append(del, p)
			continue
		}
		for _, r := range base.Retired {
			if r.Path == p {
				next.Retired = append(next.Retired, r)
				break
			}
		}
	}
	var rep []string
	for _, p := range replaced {
		if !keep(p) {
			rep = append(rep, p)
		}
	}
	return next, del, rep
}

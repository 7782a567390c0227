package pgstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"worklog/data"
)

// Readers is the store's reader-lease registry in the database
// (data.ReaderRegistry): this process registers itself as a replica
// (worklog_replica) with an expiry that a heartbeat pushes forward, and
// each generation its readers hold as a row of worklog_reader_lease. A
// writer of any process keeps the files of every generation that a replica
// whose registration has not expired holds. When a process dies its
// heartbeat stops, its registration expires after TTL, and its leases hold
// nothing any more (they are deleted by the next writer). Expiry is decided
// by the database's clock alone, so the hosts' clocks need not agree.
type Readers struct {
	db  *DB
	id  string
	ttl time.Duration
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	held   map[uint64]bool // generations this process holds
	stop   chan struct{}
	done   chan struct{}
	halt   sync.Once
	// beat, when set, is called after each heartbeat (tests).
	beat func(error)
}

var _ data.ReaderRegistry = (*Readers)(nil)

// DefaultLeaseTTL is how long a replica's reader leases outlive its last
// heartbeat; the heartbeat runs every third of it.
const DefaultLeaseTTL = 30 * time.Second

// Readers registers this process as a replica and starts its heartbeat;
// ttl zero means DefaultLeaseTTL. Close ends the registration (its leases
// with it).
func (db *DB) Readers(ctx context.Context, ttl time.Duration) (*Readers, error) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	host, _ := os.Hostname()
	var rnd [8]byte
	rand.Read(rnd[:])
	// The id names the replica's scratch directory too: file-name safe.
	safeHost := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, host)
	r := &Readers{db: db, id: fmt.Sprintf("%s-%d-%s", safeHost, os.Getpid(), hex.EncodeToString(rnd[:])),
		ttl: ttl, log: db.log, stop: make(chan struct{}), done: make(chan struct{}), held: map[uint64]bool{}}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO worklog_replica (id, host, pid, expires_at)
		VALUES ($1, $2, $3, now() + $4::interval)`, r.id, host, os.Getpid(), ttl.String()); err != nil {
		return nil, fmt.Errorf("database: register replica: %w", err)
	}
	go r.heartbeat()
	return r, nil
}

// ID is this replica's registration id (host-pid-random).
func (r *Readers) ID() string { return r.id }

// heartbeat moves the registration's expiry forward every ttl/3 and removes
// the registrations (and so the leases) of replicas that expired.
func (r *Readers) heartbeat() {
	defer close(r.done)
	t := time.NewTicker(r.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		err := r.Beat(context.Background())
		if err != nil {
			r.log.Warn("database: reader-lease heartbeat failed; if it keeps failing, writers of other replicas may delete files this replica's readers still read", "err", err)
		}
		if r.beat != nil {
			r.beat(err)
		}
	}
}

// Beat extends the registration by TTL now; the heartbeat calls it. A
// registration that expired meanwhile (the process was stopped longer than
// TTL) is made anew, with the leases this process still holds, since
// writers no longer counted them.
func (r *Readers) Beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.ttl)
	defer cancel()
	tag, err := r.db.Pool.Exec(ctx, `UPDATE worklog_replica SET expires_at = now() + $2::interval
		WHERE id = $1 AND expires_at > now()`, r.id, r.ttl.String())
	if err != nil {
		return fmt.Errorf("database: heartbeat: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Expired: between its expiry and now a writer may already have
	// deleted files that our leases name. Nothing can bring them back;
	// register again so that later commits count our readers.
	r.log.Warn("database: this replica's reader leases had expired; registering again", "replica", r.id)
	return r.register(ctx)
}

// register makes this replica's registration anew, with the leases this
// process holds (a writer deleted them with the expired registration).
func (r *Readers) register(ctx context.Context) error {
	r.mu.Lock()
	gens := make([]int64, 0, len(r.held))
	for g := range r.held {
		gens = append(gens, int64(g))
	}
	r.mu.Unlock()
	host, _ := os.Hostname()
	tx, err := r.db.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("database: register replica again: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `INSERT INTO worklog_replica (id, host, pid, expires_at)
		VALUES ($1, $2, $3, now() + $4::interval)
		ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at`, r.id, host, os.Getpid(), r.ttl.String()); err != nil {
		return fmt.Errorf("database: register replica again: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO worklog_reader_lease (replica_id, generation)
		SELECT $1, g FROM unnest($2::bigint[]) AS g ON CONFLICT DO NOTHING`, r.id, gens); err != nil {
		return fmt.Errorf("database: register replica again: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("database: register replica again: %w", err)
	}
	return nil
}

// Hold implements data.ReaderRegistry.
func (r *Readers) Hold(gen uint64) (func() error, error) {
	if gen > math.MaxInt64 {
		return nil, fmt.Errorf("generation %d out of range", gen)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	r.mu.Lock()
	r.held[gen] = true
	r.mu.Unlock()
	insert := func() error {
		_, err := r.db.Pool.Exec(ctx, `INSERT INTO worklog_reader_lease (replica_id, generation)
			VALUES ($1, $2) ON CONFLICT DO NOTHING`, r.id, int64(gen))
		return err
	}
	err := insert()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" /* foreign_key_violation */ {
		// The registration expired (the process was paused past TTL) and
		// a writer removed it: register again, then hold.
		if err = r.register(ctx); err == nil {
			err = insert()
		}
	}
	if err != nil {
		r.forget(gen)
		return nil, fmt.Errorf("database: reader lease: %w", err)
	}
	return func() error {
		r.forget(gen)
		ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
		defer cancel()
		_, err := r.db.Pool.Exec(ctx, "DELETE FROM worklog_reader_lease WHERE replica_id = $1 AND generation = $2", r.id, int64(gen))
		return err
	}, nil
}

// forget drops gen from the generations this process holds.
func (r *Readers) forget(gen uint64) {
	r.mu.Lock()
	delete(r.held, gen)
	r.mu.Unlock()
}

// Oldest implements data.ReaderRegistry: the lowest generation held by a
// replica whose registration has not expired. Expired registrations are
// deleted on the way, their leases with them.
func (r *Readers) Oldest() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	if _, err := r.db.Pool.Exec(ctx, "DELETE FROM worklog_replica WHERE expires_at <= now()"); err != nil {
		return 0, fmt.Errorf("database: expire replicas: %w", err)
	}
	var oldest *int64
	err := r.db.Pool.QueryRow(ctx, `SELECT min(l.generation) FROM worklog_reader_lease l
		JOIN worklog_replica r ON r.id = l.replica_id WHERE r.expires_at > now()`).Scan(&oldest)
	if err != nil {
		return 0, fmt.Errorf("database: reader leases: %w", err)
	}
	if oldest == nil {
		return math.MaxUint64, nil
	}
	return uint64(*oldest), nil
}

// stopHeartbeat stops the heartbeat and waits until it has.
func (r *Readers) stopHeartbeat() {
	r.halt.Do(func() { close(r.stop) })
	<-r.done
}

// Close stops the heartbeat and deletes this replica's registration and
// leases: its readers are done (the store is closed).
func (r *Readers) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.stopHeartbeat()
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	if _, err := r.db.Pool.Exec(ctx, "DELETE FROM worklog_replica WHERE id = $1", r.id); err != nil {
		return errors.Join(errors.New("database: unregister replica"), err)
	}
	return nil
}

// Live returns the ids of the replicas whose registration has not
// expired: what may still be using the scratch space named after them.
func (db *DB) Live(ctx context.Context) (map[string]bool, error) {
	rows, err := db.Pool.Query(ctx, "SELECT id FROM worklog_replica WHERE expires_at > now()")
	if err != nil {
		return nil, fmt.Errorf("database: replicas: %w", err)
	}
	defer rows.Close()
	live := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("database: replicas: %w", err)
		}
		live[id] = true
	}
	return live, rows.Err()
}

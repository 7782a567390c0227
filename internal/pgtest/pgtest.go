// Package pgtest starts a private PostgreSQL server for tests: Debian's
// `postgresql` package (initdb and postgres, found on PATH or under
// /usr/lib/postgresql/*/bin), a cluster initialised into a temporary
// directory, listening on a free loopback port with its unix socket in that
// directory, so no system service, configuration or password is needed.
//
// One server serves a whole test binary (it is started on first use and
// stopped by Main); each test gets a database of its own from New, dropped
// at its cleanup, so tests do not see each other's rows.
//
// When the programs are missing, New skips the test naming the Debian
// package, or fails it when CI=true (CI installs the package; a skip there
// would hide a missing install step).
//
// initdb and postgres refuse to run as root. A test binary that runs as
// root (this project's machines and CI do) runs them as the `postgres` user
// that the Debian package creates (or `nobody` without it), with the
// cluster directory owned by that user.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Package is the Debian package that provides the server programs.
const Package = "postgresql"

// superuser is the cluster's superuser role, whatever OS user runs it.
const superuser = "postgres"

// Server is one running private PostgreSQL cluster.
type Server struct {
	dir  string // cluster directory, also the unix socket directory
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the postmaster has exited
	werr error         // its exit status, valid after done
}

var (
	mu      sync.Mutex
	shared  *Server
	initErr error
)

// Main runs the tests of a package and stops its server afterwards; call it
// from TestMain: `func TestMain(m *testing.M) { pgtest.Main(m) }`. Without
// it the server is stopped anyway when the test binary exits (the postmaster
// gets SIGQUIT when its parent dies), but Main also removes its directory.
// Each of after runs once the tests are done, before the binary exits (the
// place for a package's own clean-up: os.Exit skips deferred calls).
func Main(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	mu.Lock()
	s := shared
	shared = nil
	mu.Unlock()
	if s != nil {
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	os.Exit(code)
}

// New returns the URL of a new, empty database on the test binary's
// private server (started on first use), dropped when the test ends.
func New(t testing.TB) string {
	t.Helper()
	s := server(t)
	name := "t_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, s.URL("postgres"))
		if err != nil {
			t.Errorf("pgtest: connect to drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		// FORCE ends sessions that a test left open (a pool not closed, a
		// killed worklog process whose connections the server has not yet
		// noticed).
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.URL(name)
}

// server returns the shared server, starting it on first use; it skips or
// fails t when the programs are missing.
func server(t testing.TB) *Server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if shared == nil && initErr == nil {
		bin, err := FindBin()
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("pgtest: %v (CI installs Debian's %s in .ci/run)", err, Package)
			}
			t.Skipf("pgtest: %v; install Debian's %s (apt-get install %s) to run this test", err, Package, Package)
		}
		shared, initErr = Start(bin)
	}
	if initErr != nil {
		t.Fatalf("pgtest: start PostgreSQL: %v", initErr)
	}
	return shared
}

// FindBin returns the directory holding initdb and postgres: the one of
// initdb on PATH, else the newest /usr/lib/postgresql/<version>/bin (where
// Debian installs them without putting them on PATH).
func FindBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("initdb and postgres not found on PATH nor under /usr/lib/postgresql/*/bin")
}

// version is the major version in a /usr/lib/postgresql/<v>/bin path.
func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initialises a cluster in a new temporary directory and starts its
// server with the programs in binDir. Stop ends it and removes the
// directory.
func Start(binDir string) (*Server, error) {
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: its parent is private to root, and the server may run
	// as another user.
	base := os.TempDir()
	if cred != nil && !searchable(base) {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "worklog-pgtest-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	s := &Server{dir: dir, done: make(chan struct{})}
	pgdata := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(binDir, "initdb"), "-D", pgdata, "-U", superuser,
		"-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// A port is free when we ask and may be taken before postgres binds
	// it; try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.port = port
		if lastErr = s.run(binDir, pgdata, cred); lastErr == nil {
			return s, nil
		}
		s.done = make(chan struct{})
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// run starts the postmaster in the foreground of a child process and waits
// until it accepts connections. postgres runs directly rather than through
// pg_ctl so that it is our child: it gets SIGQUIT (immediate shutdown) if
// the test binary dies, instead of outliving it.
func (s *Server) run(binDir, pgdata string, cred *syscall.Credential) error {
	logPath := filepath.Join(s.dir, "server.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(binDir, "postgres"), "-D", pgdata,
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-k", s.dir,
		// A test cluster: speed over durability, and room for the
		// connections of several worklog processes.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd = cmd
	go func() { s.werr = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := pgx.Connect(ctx, s.URL("postgres"))
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited: %v\n%s", s.werr, tail(log))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres did not accept connections within 60s: %v\n%s", err, tail(log))
		}
	}
}

// URL is the connection URL of database db on the server.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, s.port, db)
}

// Stop shuts the server down (fast shutdown: sessions are ended) and
// removes its directory.
func (s *Server) Stop() error {
	var err error
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				s.cmd.Process.Signal(syscall.SIGQUIT)
				<-s.done
				err = errors.New("postgres did not stop within 30s; sent SIGQUIT")
			}
		}
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

// runAs returns the credentials to run the server with: nil when this
// process is not root, else those of the `postgres` user (or `nobody`).
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("running as root, and neither a postgres nor a nobody user exists to run the server as (initdb refuses root)")
}

// searchable reports whether every directory on the way to dir may be
// entered by any user (the server's user must reach its directory).
func searchable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tail is the end of a server log, for an error message.
func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// Command worklog ingests customer-service worklog events into a Parquet
// store, queries it with embedded DuckDB and serves a privacy-aware export API.
//
// Usage:
//
//	worklog serve   [flags]            run the HTTP API
//	worklog ingest  [flags] FILE... | - load event dumps into the store
//	worklog demo    [flags]            write synthetic events into the store
//	worklog token   [flags]            mint an HS256 token for local use
//	worklog export  [flags]            run an export to a file
//	worklog prune   [flags]            delete events older than --retention-days
//	worklog forget  [flags]            erase a user: anonymize or delete their events
//
// Every subcommand has its own flags; `worklog CMD -h` lists them. Settings
// are flags with an environment variable beside them (WORKLOG_DATA for
// --data, and so on); a flag given on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"worklog/internal/fsutil"
)

// command is one subcommand: its one-line summary and its entry point.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands lists the subcommands.
var commands = map[string]command{
	"serve":     {"run the HTTP API", runServe},
	"ingest":    {"load event dumps (NDJSON, JSON array, CSV; gzip/zstd) into the store", runIngest},
	"demo":      {"write realistic synthetic events into the store", runDemo},
	"token":     {"mint an HS256 token with the configured secret", runToken},
	"export":    {"run an export with the endpoint's parameters, to a file", runExport},
	"analytics": {"volumes, handling times, SLA and AI rates by dimension (the analytics endpoint's parameters)", runAnalytics},
	"prune":     {"delete the events older than --retention-days", runPrune},
	"forget":    {"erase a user (--user-id): anonymize (default) or delete their events", runForget},
}

// exitError carries a process exit code through the error chain.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		code = 0 // asked for help and got it, like the standard tools
	} else if err.Error() != "" {
		fmt.Fprintln(os.Stderr, errorMessage(err))
	}
	os.Exit(code)
}

// errorMessage is what a failed command says on stderr. A full disk is
// said plainly first — the commands write atomically, so nothing was
// committed — with the cause's first line after it (DuckDB's text of a
// full disk can go on with the statement it ran).
func errorMessage(err error) string {
	if !fsutil.IsNoSpace(err) {
		return "worklog: " + err.Error()
	}
	detail, _, _ := strings.Cut(err.Error(), "\n")
	if len(detail) > 300 {
		detail = detail[:300] + "…"
	}
	return "worklog: insufficient storage: the disk is full; nothing was committed or left half-written (free space and run again)\n  cause: " + detail
}

// run dispatches to a subcommand.
func run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return &exitError{code: 2, err: errors.New("")}
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage()
		return &exitError{code: 2, err: fmt.Errorf("unknown command %q", args[0])}
	}
	return cmd.run(ctx, args[1:])
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: worklog COMMAND [flags]\n\ncommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-9s %s\n", n, commands[n].summary)
	}
	b.WriteString("\nRun 'worklog COMMAND -h' for the flags of a command.\n")
	fmt.Fprint(os.Stderr, b.String())
}

// envOr returns the environment variable env when set, else def. Flags use it
// as their default, so a flag on the command line overrides the environment.
func envOr(env, def string) string {
	if v, ok := os.LookupEnv(env); ok {
		return v
	}
	return def
}

// stringSetting defines a string flag whose default comes from env.
func stringSetting(fs *flag.FlagSet, name, env, def, usage string) *string {
	// The flag package shows a backquoted word of the usage as the value's
	// type; without it every setting would show as "string".
	return fs.String(name, envOr(env, def), usage+" (`"+settingType(def)+"`) (env "+env+")")
}

// secretSetting defines a string flag for a secret (a signing secret, a key,
// a URL with a password): like stringSetting, its value may come from env,
// but --help never shows it — help output lands in terminals, logs and bug
// reports.
func secretSetting(fs *flag.FlagSet, name, env, usage string) *string {
	v := envOr(env, "")
	fs.Var(secretValue{&v}, name, usage+" (`string`) (env "+env+") (never shown)")
	return &v
}

// secretValue is a flag.Value whose String is always empty, so that flag
// prints no default for it.
type secretValue struct{ p *string }

// String hides the value.
func (secretValue) String() string { return "" }

// Set stores the value given on the command line.
func (v secretValue) Set(s string) error { *v.p = s; return nil }

// settingType names the kind of value a setting takes, from its default.
func settingType(def string) string {
	if _, err := strconv.ParseBool(def); err == nil && def != "0" && def != "1" {
		return "bool"
	}
	if _, err := strconv.ParseInt(def, 10, 64); err == nil {
		return "int"
	}
	if _, err := parseByteSize(def); err == nil && strings.ContainsAny(def, "KMGB") {
		return "size"
	}
	if d, err := time.ParseDuration(def); err == nil && d != 0 {
		return "duration"
	}
	return "string"
}

// parseArgs parses flags wherever they stand among the arguments, as the
// standard tools do ('worklog ingest dump.ndjson --on-error skip'); "--"
// ends the flags. fs.Args() then holds the other arguments, in order.
func parseArgs(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// dataDirFlag defines the --data setting every command shares.
func dataDirFlag(fs *flag.FlagSet) *string {
	return stringSetting(fs, "data", "WORKLOG_DATA", "./data", "data directory")
}

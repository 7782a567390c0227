package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"worklog/export/api/auth"
	"worklog/privacy"
)

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// runToken runs 'worklog token': it mints an HS256 token with the configured
// secret (or, with none configured, the demo secret that 'serve --demo' keeps
// in the data directory) and prints it.
func runToken(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	dataDir := dataDirFlag(fs)
	secret := secretSetting(fs, "jwt-secret", "WORKLOG_JWT_SECRET", "HS256 secret to sign with (default: the demo secret in the data directory)")
	sub := fs.String("sub", "", "user id (sub claim), required")
	email := fs.String("email", "", "e-mail address (email claim): where background exports are delivered")
	ttl := ttlFlag(24 * time.Hour)
	fs.Var(&ttl, "ttl", "lifetime of the token: a Go duration (90m, 12h) or days (7d)")
	level := fs.String("privacy-level", "", "reportingPrivacyLevel claim: raises the server's level for this token (none, partiallyPseudonymized, pseudonymized)")
	issuer := fs.String("issuer", "", "iss claim: what a server started with --jwt-issuer requires")
	var audience multiFlag
	fs.Var(&audience, "audience", "aud claim (repeatable): a server started with --jwt-audience requires its value among them")
	var perms multiFlag
	fs.Var(&perms, "permission", "permission to grant (repeatable): "+strings.Join(knownPermissions, ", "))
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	}
	for _, p := range perms {
		if !slices.Contains(knownPermissions, p) {
			return fmt.Errorf("token: unknown permission %q; the permissions are %s", p, strings.Join(knownPermissions, ", "))
		}
	}
	for _, a := range audience {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("token: --audience: an empty audience names no one")
		}
	}
	if *level != "" {
		if _, err := privacy.ParseLevel(*level); err != nil {
			return fmt.Errorf("token: --privacy-level: %w", err)
		}
	}
	key := []byte(*secret)
	if len(key) == 0 {
		var err error
		key, err = readDemoSecret(*dataDir)
		if err != nil {
			return fmt.Errorf("token: no --jwt-secret given and %w", err)
		}
	}
	tok, err := auth.MintHS256(key, auth.TokenRequest{Subject: *sub, Email: *email, Permissions: perms, PrivacyLevel: *level, Issuer: *issuer, Audience: audience, TTL: time.Duration(ttl)})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(os.Stdout, tok)
	return err
}

// knownPermissions are the permissions the server knows (SPEC §7); a token
// with a misspelt one would silently grant nothing.
var knownPermissions = []string{privacy.PermViewEmail, auth.PermIngest, auth.PermErase}

// ttlFlag is a token lifetime: a Go duration, or whole days as "7d".
type ttlFlag time.Duration

func (t *ttlFlag) String() string { return time.Duration(*t).String() }

func (t *ttlFlag) Set(v string) error {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive number of days like 7d, got %q", v)
		}
		*t = ttlFlag(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration like 12h or days like 7d, got %q", v)
	}
	*t = ttlFlag(d)
	return nil
}

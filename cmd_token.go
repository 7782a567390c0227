package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
	"worklog/export/api/auth"
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
	secret := stringSetting(fs, "jwt-secret", "WORKLOG_JWT_SECRET", "", "HS256 secret to sign with (default: the demo secret in the data directory)")
	sub := fs.String("sub", "", "user id (sub claim), required")
	email := fs.String("email", "", "e-mail address (email claim): where background exports are delivered")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime of the token")
	var perms multiFlag
	fs.Var(&perms, "permission", "permission to grant (repeatable): reporting.viewEmail, reporting.ingest")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	}
	key := []byte(*secret)
	if len(key) == 0 {
		var err error
		key, err = readDemoSecret(*dataDir)
		if err != nil {
			return fmt.Errorf("token: no --jwt-secret given and %w", err)
		}
	}
	tok, err := auth.MintHS256(key, auth.TokenRequest{Subject: *sub, Email: *email, Permissions: perms, TTL: *ttl})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(os.Stdout, tok)
	return err
}

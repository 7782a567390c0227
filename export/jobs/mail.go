package jobs

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"worklog/internal/fsutil"

	"github.com/wneessen/go-mail"
)

// Mailer delivers the message of a finished job. Send must be safe to call
// again for the same job after a crash (the message keeps its Message-ID), and
// safe for concurrent use.
type Mailer interface {
	Send(ctx context.Context, jobID string, msg *mail.Msg) (Receipt, error)
}

// Receipt says what became of a message, so a job's status tells the truth:
// handed to an SMTP server (sent) or only written to a file (written).
type Receipt struct {
	// Written is the path of the .eml file when the message was written to
	// an outbox rather than sent; empty when an SMTP server accepted it.
	Written string
}

// SMTPMailer sends through an SMTP server with go-mail.
type SMTPMailer struct {
	host string
	opts []mail.Option
}

// NewSMTPMailer parses an SMTP URL:
//
//	smtp://[user:pass@]host[:port]   plain SMTP, STARTTLS when the server offers it (port 587 by default)
//	smtps://[user:pass@]host[:port]  implicit TLS (port 465 by default)
//
// With a user the client authenticates with the best mechanism the server
// offers. The query string may set timeout (a Go duration, default 15s) and
// tls=mandatory to refuse a server without STARTTLS.
func NewSMTPMailer(rawURL string) (*SMTPMailer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("smtp url: %w", err)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("smtp url %q: no host", redactURL(u))
	}
	var opts []mail.Option
	port := 587
	switch u.Scheme {
	case "smtp":
		policy := mail.TLSOpportunistic
		if u.Query().Get("tls") == "mandatory" {
			policy = mail.TLSMandatory
		}
		opts = append(opts, mail.WithTLSPolicy(policy))
	case "smtps":
		port = 465
		opts = append(opts, mail.WithSSL())
	default:
		return nil, fmt.Errorf("smtp url %q: scheme must be smtp or smtps", redactURL(u))
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port <= 0 || port > 65535 {
			return nil, fmt.Errorf("smtp url %q: bad port %q", redactURL(u), p)
		}
	}
	opts = append(opts, mail.WithPort(port))
	if t := u.Query().Get("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("smtp url %q: bad timeout %q", redactURL(u), t)
		}
		opts = append(opts, mail.WithTimeout(d))
	}
	if u.User != nil && u.User.Username() != "" {
		pass, _ := u.User.Password()
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(u.User.Username()), mail.WithPassword(pass))
	}
	// Validate the options now, so a bad setting stops serve at start.
	if _, err := mail.NewClient(u.Hostname(), opts...); err != nil {
		return nil, fmt.Errorf("smtp url %q: %w", redactURL(u), err)
	}
	return &SMTPMailer{host: u.Hostname(), opts: opts}, nil
}

// redactURL prints an SMTP URL without its password.
func redactURL(u *url.URL) string { return u.Redacted() }

// Send dials the server and sends msg. A new client per message keeps
// concurrent deliveries independent.
func (m *SMTPMailer) Send(ctx context.Context, _ string, msg *mail.Msg) (Receipt, error) {
	c, err := mail.NewClient(m.host, m.opts...)
	if err != nil {
		return Receipt{}, fmt.Errorf("smtp client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return Receipt{}, fmt.Errorf("smtp send to %s: %w", m.host, err)
	}
	return Receipt{}, nil
}

// OutboxMailer writes each message as <Dir>/<job id>.eml, the embedded
// default when no SMTP server is configured. The file is written under a
// temporary name and renamed, so the outbox never shows half a message, and
// a second Send for the same job replaces the first: delivery to the outbox
// is idempotent.
type OutboxMailer struct {
	Dir string
}

// Send writes msg into the outbox; the receipt names the file.
func (m OutboxMailer) Send(_ context.Context, jobID string, msg *mail.Msg) (Receipt, error) {
	if !validJobID(jobID) {
		return Receipt{}, fmt.Errorf("outbox: invalid job id %q", jobID)
	}
	path := filepath.Join(m.Dir, jobID+".eml")
	if err := m.write(path, msg); err != nil {
		return Receipt{}, err
	}
	return Receipt{Written: path}, nil
}

// write writes msg to path atomically (fsutil.WriteAtomic).
func (m OutboxMailer) write(path string, msg *mail.Msg) (err error) {
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	// An earlier attempt's leftover (a replica that died while writing);
	// one delivery of a job runs at a time.
	if err := removeTempFiles(m.Dir, filepath.Base(path)); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	err = fsutil.WriteAtomic(path, 0o600, func(w io.Writer) error {
		_, err := msg.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("outbox: write %s: %w", path, err)
	}
	return nil
}

// jobMessage is what a delivery says: who, what and how to get the file.
type jobMessage struct {
	From, To    string
	Job         *Job
	Path        string // the finished file
	Attach      bool   // attach the file; else link to DownloadURL
	DownloadURL string // the signed link
	LinkExpires time.Time
	StatusURL   string
}

// build turns the message into a go-mail Msg. The Message-ID is derived from
// the job id, so a message resent after a crash is recognisable as the same.
func (m jobMessage) build() (*mail.Msg, error) {
	j := m.Job
	msg := mail.NewMsg()
	if err := msg.From(m.From); err != nil {
		return nil, fmt.Errorf("mail from %q: %w", m.From, err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("mail to %q: %w", m.To, err)
	}
	msg.SetMessageIDWithValue(j.ID + "@worklog")
	msg.SetDateWithValue(j.FinishedAt)
	msg.Subject(fmt.Sprintf("Your worklog export is ready (%d rows, %s)", j.Rows, strings.ToUpper(string(j.Format))))
	var b strings.Builder
	fmt.Fprintf(&b, "Hello,\n\nthe export you requested on %s is ready: %d rows as %s.\n\n",
		j.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC"), j.Rows, strings.ToUpper(string(j.Format)))
	until := m.LinkExpires.UTC().Format("2006-01-02 15:04 UTC")
	if m.Attach {
		fmt.Fprintf(&b, "It is attached to this message. It can also be downloaded until %s:\n\n  %s\n", until, m.DownloadURL)
	} else {
		fmt.Fprintf(&b, "It is %s, too large to attach. Download it until %s:\n\n  %s\n",
			humanBytes(j.Bytes), until, m.DownloadURL)
	}
	fmt.Fprintf(&b, "\nThe link opens in a browser without signing in, for this file only, and stops\n"+
		"working at %s. Anyone who has the link can download the file until then:\n"+
		"forward this message with care.\n", until)
	fmt.Fprintf(&b, "\nJob status (needs your API token): %s\n", m.StatusURL)
	msg.SetBodyString(mail.TypeTextPlain, b.String())
	if m.Attach {
		if _, err := os.Stat(m.Path); err != nil {
			// go-mail skips an attachment it cannot stat; never send a
			// message that promises a file it does not carry.
			return nil, fmt.Errorf("attach export: %w", err)
		}
		msg.AttachFile(m.Path, mail.WithFileName(FileName(j)),
			mail.WithFileContentType(mail.ContentType(j.Format.ContentType())))
	}
	return msg, nil
}

// FileName is the name a user sees for a job's file (attachment and download).
func FileName(j *Job) string {
	return fmt.Sprintf("reporting_worklog_%s.%s", j.CreatedAt.UTC().Format("20060102T150405Z"), j.Format.Extension())
}

// base64Size is the size of n bytes as a MIME attachment: base64 (4 bytes
// for every 3, rounded up) in lines of 76 characters, each ending in CRLF.
func base64Size(n int64) int64 {
	enc := (n + 2) / 3 * 4
	lines := (enc + 75) / 76
	return enc + 2*lines
}

// countingWriter counts what is written to it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// messageSize is the size of msg as it goes over the wire.
func messageSize(msg *mail.Msg) (int64, error) {
	var c countingWriter
	if _, err := msg.WriteTo(&c); err != nil {
		return 0, fmt.Errorf("measure message: %w", err)
	}
	return c.n, nil
}

// buildWithin builds the message with the file attached when the message
// as sent — headers, text and the base64 attachment — fits limit, and with
// the download link only otherwise. base64 grows a file by a third, so an
// 8.4 MB file is an 11.4 MB message: the raw size says nothing about
// whether the message fits.
func (m jobMessage) buildWithin(limit int64) (*mail.Msg, error) {
	m.Attach = base64Size(m.Job.Bytes) <= limit
	if m.Attach {
		msg, err := m.build()
		if err != nil {
			return nil, err
		}
		size, err := messageSize(msg)
		if err != nil {
			return nil, err
		}
		if size <= limit {
			return msg, nil
		}
		m.Attach = false
	}
	return m.build()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// Package mailtest holds test helpers for e-mail: a real SMTP server on
// loopback (go-smtp) that keeps what it receives, and a parser that reads a
// message as a mail program shows it. Only tests import it.
package mailtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Sink is an in-process SMTP server on loopback that keeps what it
// receives. failRcpt makes the first n RCPT commands fail with a temporary error.
type Sink struct {
	// Addr is the host:port the server listens on.
	Addr     string
	mu       sync.Mutex
	msgs     []Msg
	failRcpt int
}

// Msg is one received message: envelope sender, recipients, raw data.
type Msg struct {
	From string
	To   []string
	Data []byte
}

// NewSink starts a Sink on a free loopback port; it stops with the test.
func NewSink(t *testing.T, failRcpt int) *Sink {
	t.Helper()
	sink := &Sink{failRcpt: failRcpt}
	s := smtp.NewServer(sink)
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink.Addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return sink
}

// Received returns the messages received so far, in order.
func (s *Sink) Received() []Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Msg(nil), s.msgs...)
}

// NewSession implements smtp.Backend.
func (s *Sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }

type session struct {
	sink *Sink
	msg  Msg
}

func (ss *session) Reset()        { ss.msg = Msg{} }
func (ss *session) Logout() error { return nil }
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.msg.From = from
	return nil
}
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	if ss.sink.failRcpt > 0 {
		ss.sink.failRcpt--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	ss.msg.To = append(ss.msg.To, to)
	return nil
}
func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.msg.Data = b
	ss.sink.mu.Lock()
	ss.sink.msgs = append(ss.sink.msgs, ss.msg)
	ss.sink.mu.Unlock()
	return nil
}

// Parsed is a received message as a mail program shows it: headers, the
// text parts joined, and attachments by file name with their media types.
type Parsed struct {
	Header      netmail.Header
	Text        string
	Attachments map[string][]byte
	Types       map[string]string
}

// Parse reads a raw message; it fails t when the message is malformed.
func Parse(t *testing.T, raw []byte) Parsed {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse mail: %v", err)
	}
	pm := Parsed{Header: m.Header, Attachments: map[string][]byte{}, Types: map[string]string{}}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("mail content type: %v", err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		var body io.Reader = m.Body
		switch strings.ToLower(m.Header.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("mail body: %v", err)
		}
		pm.Text = string(b)
		return pm
	}
	var walk func(r io.Reader, boundary string)
	walk = func(r io.Reader, boundary string) {
		mr := multipart.NewReader(r, boundary)
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("mail part: %v", err)
			}
			pt, pp, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			if strings.HasPrefix(pt, "multipart/") {
				walk(p, pp["boundary"])
				continue
			}
			var body io.Reader = p
			if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
				body = base64.NewDecoder(base64.StdEncoding, p)
			}
			b, err := io.ReadAll(body)
			if err != nil {
				t.Fatalf("mail part body: %v", err)
			}
			if name := p.FileName(); name != "" {
				pm.Attachments[name] = b
				pm.Types[name] = pt
			} else if pt == "text/plain" {
				pm.Text += string(b)
			}
		}
	}
	walk(m.Body, params["boundary"])
	return pm
}

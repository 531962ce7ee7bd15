package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Notification is a message to a patient: a first access by a
// professional, an emergency access, the creation of their DMP...
type Notification struct {
	To      string    `json:"to"`                // an address (e-mail, phone), or the patient id when none is known
	Patient string    `json:"patient,omitempty"` // the patient it is about, when there is one
	Subject string    `json:"subject"`
	Body    string    `json:"body"`
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // one of the Notify* kinds, or another
}

// Kinds of notifications.
const (
	NotifyFirstAccess     = "first-access"
	NotifyEmergencyAccess = "emergency-access"
	NotifyDMPCreated      = "dmp-created"
	NotifyDMPClosed       = "dmp-closed"
	NotifyConsentChanged  = "consent-changed"
)

// Notifier delivers notifications. Notify returns once the notification is
// delivered or durably queued, or with an error.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// ---------------------------------------------------------------------------
// Outbox.

// OutboxFile is the name of the outbox file in the data directory.
const OutboxFile = "outbox.jsonl"

// Outbox is the default Notifier: an append-only file of JSON lines
// (dataDir/outbox.jsonl, mode 0600), each notification written and fsync'd
// before Notify returns. Another process (or `go run . outbox`) reads it.
// Safe for concurrent use.
type Outbox struct {
	path string

	mu sync.Mutex
	f  *os.File
}

// NewOutbox opens (creating if needed) dataDir/outbox.jsonl. A last line
// left incomplete by a crash (never acknowledged) is cut off.
func NewOutbox(dataDir string) (*Outbox, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: data directory: %w", err)
	}
	path := filepath.Join(dataDir, OutboxFile)
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if err := outboxRepair(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if created {
		// The new file's name must survive a crash too.
		if d, err := os.Open(dataDir); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return &Outbox{path: path, f: f}, nil
}

// outboxRepair truncates f after its last newline.
func outboxRepair(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	// Read backwards to the last newline.
	const chunk = 4096
	buf := make([]byte, chunk)
	end := size
	for end > 0 {
		start := max(end-chunk, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && err != io.EOF {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep := start + int64(i) + 1
			if keep == size {
				return nil
			}
			return outboxTruncate(f, keep)
		}
		end = start
	}
	return outboxTruncate(f, 0)
}

func outboxTruncate(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// Notify appends n to the outbox and fsyncs it.
func (o *Outbox) Notify(ctx context.Context, n Notification) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.Time.IsZero() {
		n.Time = time.Now().UTC()
	}
	line, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	line = append(line, '\n')
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return errors.New("outbox: closed")
	}
	if _, err := o.f.Write(line); err != nil {
		// Do not leave half a line for the next one to be glued to.
		outboxRepair(o.f)
		return fmt.Errorf("outbox: write: %w", err)
	}
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("outbox: sync: %w", err)
	}
	return nil
}

// List returns the notifications sent to `to` or about patient `to` ("" for
// all), oldest first.
func (o *Outbox) List(to string) ([]Notification, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f, err := os.Open(o.path)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	defer f.Close()
	var out []Notification
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var n Notification
		if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
			return nil, fmt.Errorf("outbox: %s line %d: %w", o.path, line, err)
		}
		if to == "" || n.To == to || n.Patient == to {
			out = append(out, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return out, nil
}

// Path is the outbox file.
func (o *Outbox) Path() string { return o.path }

// Close closes the file; Notify then fails, List still works.
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	return err
}

// ---------------------------------------------------------------------------
// Webhook.

// Webhook POSTs each notification as JSON to a URL (a messaging gateway).
// Any status other than 2xx is an error.
type Webhook struct {
	url    string
	client *http.Client
}

// webhookTimeout bounds a POST when the client has no timeout of its own.
const webhookTimeout = 10 * time.Second

// NewWebhook posts to url with client; nil means a client with a 10 s
// timeout.
func NewWebhook(url string, client *http.Client) *Webhook {
	if client == nil {
		client = &http.Client{Timeout: webhookTimeout}
	}
	return &Webhook{url: url, client: client}
}

// Notify POSTs n and waits for the answer.
func (w *Webhook) Notify(ctx context.Context, n Notification) error {
	if n.Time.IsZero() {
		n.Time = time.Now().UTC()
	}
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok && w.client.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, webhookTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: %s answered %s", w.url, resp.Status)
	}
	return nil
}

// ---------------------------------------------------------------------------
// SMTP.

// SMTP sends each notification as a plain-text UTF-8 e-mail; To must be an
// e-mail address. STARTTLS is used when the server offers it.
type SMTP struct {
	addr, from string
	auth       smtp.Auth
	// Timeout bounds one delivery when ctx has no deadline (default 30 s).
	Timeout time.Duration
	// TLSConfig is used for STARTTLS; nil means the host name of addr.
	TLSConfig *tls.Config
}

// NewSMTP sends through the server at addr (host:port) as from; auth may
// be nil.
func NewSMTP(addr, from string, auth smtp.Auth) *SMTP {
	return &SMTP{addr: addr, from: from, auth: auth, Timeout: 30 * time.Second}
}

// Notify delivers n to n.To.
func (s *SMTP) Notify(ctx context.Context, n Notification) (err error) {
	if !strings.Contains(n.To, "@") || strings.ContainsAny(n.To, "\r\n<>") {
		return errors.New("smtp: the recipient is not an e-mail address")
	}
	if strings.ContainsAny(s.from, "\r\n<>") {
		return errors.New("smtp: invalid sender address")
	}
	if n.Time.IsZero() {
		n.Time = time.Now()
	}
	msg := smtpMessage(s.from, n)

	if _, ok := ctx.Deadline(); !ok && s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	host, _, err := net.SplitHostPort(s.addr)
	if err != nil {
		return fmt.Errorf("smtp: address %q: %w", s.addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// A cancelled ctx interrupts a blocked exchange.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp: %w", err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("smtp: hello: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := s.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: host}
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("smtp: starttls: %w", err)
		}
	}
	if s.auth != nil {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("smtp: the server does not offer AUTH")
		}
		if err := c.Auth(s.auth); err != nil {
			return fmt.Errorf("smtp: auth: %w", err)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return fmt.Errorf("smtp: mail from: %w", err)
	}
	if err := c.Rcpt(n.To); err != nil {
		return fmt.Errorf("smtp: rcpt to: %w", err)
	}
	wc, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp: data: %w", err)
	}
	if _, err := wc.Write(msg); err != nil {
		wc.Close()
		return fmt.Errorf("smtp: data: %w", err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("smtp: data: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("smtp: quit: %w", err)
	}
	return nil
}

// smtpMessage is the RFC 5322 message: headers (Subject encoded per RFC
// 2047) and a quoted-printable UTF-8 body with CRLF line ends.
func smtpMessage(from string, n Notification) []byte {
	var b bytes.Buffer
	subject := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, n.Subject)
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", n.To)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", n.Time.Format(time.RFC1123Z))
	if n.Kind != "" && !strings.ContainsAny(n.Kind, "\r\n") {
		fmt.Fprintf(&b, "X-DMP-Notification: %s\r\n", n.Kind)
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(strings.ReplaceAll(n.Body, "\r\n", "\n"), "\n", "\r\n")
	qp.Write([]byte(body))
	qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

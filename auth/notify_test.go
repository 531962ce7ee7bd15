package auth

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The notifiers are Notifiers.
var (
	_ Notifier = (*Outbox)(nil)
	_ Notifier = (*Webhook)(nil)
	_ Notifier = (*SMTP)(nil)
)

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	o, err := NewOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	sent := []Notification{
		{To: "p1", Kind: NotifyDMPCreated, Subject: "Votre DMP est créé", Body: "Bienvenue.", Time: at},
		{To: "p1", Kind: NotifyFirstAccess, Subject: "Premier accès", Body: "Un professionnel a consulté votre DMP.", Time: at},
		{To: "p2", Kind: NotifyEmergencyAccess, Subject: "Accès en urgence", Body: "Accès en bris de glace."},
	}
	for _, n := range sent {
		if err := o.Notify(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(o.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("outbox mode %v, want 0600", st.Mode().Perm())
	}
	got, err := o.List("p1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Subject != sent[0].Subject || got[1].Kind != NotifyFirstAccess || !got[1].Time.Equal(at) {
		t.Errorf("List(p1) = %+v", got)
	}
	all, err := o.List("")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[2].To != "p2" || all[2].Time.IsZero() {
		t.Errorf("List() = %+v", all)
	}

	// Concurrent writers never interleave lines.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := o.Notify(context.Background(), Notification{To: "p3", Subject: strings.Repeat("x", 5000), Body: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, err := o.List("p3"); err != nil || len(got) != 50 {
		t.Fatalf("List(p3): %d, %v", len(got), err)
	}

	// A line torn by a crash (never acknowledged) is cut off at reopening.
	o.Close()
	if err := o.Notify(context.Background(), sent[0]); err == nil {
		t.Error("Notify after Close succeeded")
	}
	f, err := os.OpenFile(o.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"to":"p1","subject":"half`)
	f.Close()
	o2, err := NewOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	if err := o2.Notify(context.Background(), Notification{To: "p1", Subject: "after"}); err != nil {
		t.Fatal(err)
	}
	got, err = o2.List("p1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Subject != "after" {
		t.Errorf("after repair: %+v", got)
	}
}

func TestWebhook(t *testing.T) {
	var mu sync.Mutex
	var received []Notification
	status := http.StatusAccepted
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with %q", r.Method, r.Header.Get("Content-Type"))
		}
		var n Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Error(err)
		}
		mu.Lock()
		received = append(received, n)
		code := status
		mu.Unlock()
		w.WriteHeader(code)
	}))
	defer srv.Close()

	wh := NewWebhook(srv.URL, nil)
	n := Notification{To: "p1", Kind: NotifyEmergencyAccess, Subject: "Accès en urgence", Body: "Un accès en urgence a eu lieu."}
	if err := wh.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if len(received) != 1 || received[0].To != "p1" || received[0].Subject != n.Subject || received[0].Time.IsZero() {
		t.Errorf("received %+v", received)
	}

	mu.Lock()
	status = http.StatusInternalServerError
	mu.Unlock()
	if err := wh.Notify(context.Background(), n); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("a 500 gave %v", err)
	}

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer slow.Close()
	start := time.Now()
	err := NewWebhook(slow.URL, &http.Client{Timeout: 50 * time.Millisecond}).Notify(context.Background(), n)
	if err == nil || time.Since(start) > time.Second {
		t.Errorf("slow server: %v after %v", err, time.Since(start))
	}

	if err := NewWebhook("http://127.0.0.1:1/unreachable", nil).Notify(context.Background(), n); err == nil {
		t.Error("unreachable server: no error")
	}
}

// notifyTestMail is what the fake SMTP server received.
type notifyTestMail struct {
	from, to string
	data     string
}

// notifyTestSMTPServer is a minimal SMTP server on 127.0.0.1: enough of RFC
// 5321 for net/smtp (EHLO, MAIL, RCPT, DATA, QUIT). Recipients containing
// "refused" are rejected with 550.
func notifyTestSMTPServer(t *testing.T) (string, <-chan notifyTestMail) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	mails := make(chan notifyTestMail, 10)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go notifyTestSMTPSession(conn, mails)
		}
	}()
	return ln.Addr().String(), mails
}

func notifyTestSMTPSession(conn net.Conn, mails chan<- notifyTestMail) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	reply := func(s string) { io.WriteString(conn, s+"\r\n") }
	reply("220 127.0.0.1 ESMTP fake")
	var m notifyTestMail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			reply("250-127.0.0.1\r\n250 8BITMIME")
		case strings.HasPrefix(cmd, "HELO"):
			reply("250 127.0.0.1")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m = notifyTestMail{from: strings.Trim(line[len("MAIL FROM:"):], "<> ")}
			if i := strings.Index(m.from, ">"); i >= 0 {
				m.from = m.from[:i]
			}
			reply("250 OK")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			to := strings.Trim(line[len("RCPT TO:"):], "<> ")
			if strings.Contains(to, "refused") {
				reply("550 no such user")
				continue
			}
			m.to = to
			reply("250 OK")
		case cmd == "DATA":
			reply("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			m.data = b.String()
			mails <- m
			reply("250 queued")
		case cmd == "QUIT":
			reply("221 bye")
			return
		case cmd == "RSET" || cmd == "NOOP":
			reply("250 OK")
		default:
			reply("502 not implemented")
		}
	}
}

func TestSMTP(t *testing.T) {
	addr, mails := notifyTestSMTPServer(t)
	s := NewSMTP(addr, "dmp@example.org", nil)
	n := Notification{
		To: "patient@example.org", Kind: NotifyFirstAccess,
		Subject: "Premier accès à votre DMP",
		Body:    "Un professionnel de santé a consulté votre dossier médical partagé.\nRendez-vous sur Mon espace santé.",
		Time:    time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
	}
	if err := s.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var m notifyTestMail
	select {
	case m = <-mails:
	case <-time.After(5 * time.Second):
		t.Fatal("no mail received")
	}
	if m.from != "dmp@example.org" || m.to != "patient@example.org" {
		t.Errorf("envelope %q -> %q", m.from, m.to)
	}
	msg, err := mail.ReadMessage(strings.NewReader(m.data))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != n.Subject {
		t.Errorf("Subject %q (%v)", subject, err)
	}
	if msg.Header.Get("To") != n.To || msg.Header.Get("X-DMP-Notification") != NotifyFirstAccess {
		t.Errorf("headers %v", msg.Header)
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(n.Time) {
		t.Errorf("Date %v (%v)", d, err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(strings.TrimRight(string(body), "\r\n"), "\r\n", "\n"); got != n.Body {
		t.Errorf("body %q", got)
	}

	// A refused recipient, a patient id instead of an address, an
	// unreachable server and a header injection are errors.
	bad := n
	bad.To = "refused@example.org"
	if err := s.Notify(context.Background(), bad); err == nil {
		t.Error("refused recipient: no error")
	}
	bad.To = "p1"
	if err := s.Notify(context.Background(), bad); err == nil {
		t.Error("patient id as address: no error")
	}
	bad.To = "a@example.org\r\nBcc: b@example.org"
	if err := s.Notify(context.Background(), bad); err == nil {
		t.Error("header injection: no error")
	}
	if err := NewSMTP("127.0.0.1:1", "dmp@example.org", nil).Notify(context.Background(), n); err == nil {
		t.Error("unreachable server: no error")
	}
	// A subject with a line break stays one header.
	inj := n
	inj.Subject = "Bonjour\r\nBcc: b@example.org"
	if err := s.Notify(context.Background(), inj); err != nil {
		t.Fatal(err)
	}
	m = <-mails
	msg, err = mail.ReadMessage(strings.NewReader(m.data))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Bcc") != "" {
		t.Errorf("injected header: %v", msg.Header)
	}
}

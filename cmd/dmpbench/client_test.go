package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The load generator's own HTTP client reads every form of answer a Go
// server writes, keeps its connections, and sends what net/http's did.
func TestClientReadsEveryFormOfAnswer(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/fhir/length":
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Write([]byte(`{"ok":true}`))
		case "/fhir/chunked": // flushed before its end: chunked, as a streamed page is
			w.Write([]byte(big[:40<<10]))
			w.(http.Flusher).Flush()
			w.Write([]byte(big[40<<10:]))
		case "/fhir/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		case "/fhir/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/fhir/echo":
			got := r.Method + " " + r.URL.RequestURI() + " " + r.Header.Get("Authorization") + " " + r.Header.Get("Accept") + " " +
				r.Header.Get("Content-Type") + " " + r.Header.Get("Prefer") + " " + string(body)
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(got))
		case "/floor":
			w.Write([]byte("floor"))
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newClient(srv.Listener.Addr().String(), 4)
	// A body read past its end would wait for the server's close: bounded.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	longBody := []byte(strings.Repeat("b", 70<<10)) // above the size sent with the headers
	tests := []struct {
		name, method, url string
		body              []byte
		status            int
		want              string
	}{
		{"content-length", "GET", "/length", nil, 200, `{"ok":true}`},
		{"chunked", "GET", "/chunked", nil, 200, big},
		{"connection close", "GET", "/close", nil, 200, "bye"},
		{"no content", "DELETE", "/empty", nil, 204, ""},
		{"headers and body", "POST", "/echo?a=1&b=%2B", []byte(`{"x":1}`), 201,
			`POST /fhir/echo?a=1&b=%2B Bearer tok application/fhir+json application/fhir+json return=minimal {"x":1}`},
		{"long body", "POST", "/echo", longBody, 201,
			"POST /fhir/echo Bearer tok application/fhir+json application/fhir+json return=minimal " + string(longBody)},
		{"absolute next link", "GET", "http://" + c.addr + "/fhir/length", nil, 200, `{"ok":true}`},
		{"outside the FHIR base", "GET", "http://" + c.addr + "/floor", nil, 200, "floor"},
		{"not found", "GET", "/nothing", nil, 404, "404 page not found\n"},
	}
	var buf bytes.Buffer
	for round := 0; round < 2; round++ { // the second round on kept connections
		for _, tc := range tests {
			status, err := c.do(ctx, tc.method, tc.url, "tok", tc.body, &buf)
			if err != nil || status != tc.status || buf.String() != tc.want {
				t.Errorf("round %d, %s: %d %v %.120q, want %d %.120q", round, tc.name, status, err, buf.String(), tc.status, tc.want)
			}
		}
	}
	// One connection served everything but the answers that closed it.
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections opened, want 3 (one, and one after each of the two closes)", n)
	}
	if _, err := c.do(ctx, "GET", "http://elsewhere:80/fhir/length", "tok", nil, &buf); err == nil {
		t.Error("a link to another server was followed")
	}
}

// A kept connection the server closed while idle is replaced, and the
// request sent again; a context's end interrupts a request under way.
func TestClientRecoversClosedConnectionsAndHonoursItsContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fhir/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	defer close(release)
	c := newClient(srv.Listener.Addr().String(), 4)
	var buf bytes.Buffer
	if status, err := c.do(context.Background(), "GET", "/a", "tok", nil, &buf); err != nil || status != 200 {
		t.Fatalf("first request: %d %v", status, err)
	}
	srv.CloseClientConnections() // as the server's idle timeout would
	time.Sleep(50 * time.Millisecond)
	if status, err := c.do(context.Background(), "GET", "/a", "tok", nil, &buf); err != nil || status != 200 || buf.String() != "ok" {
		t.Errorf("request on a connection the server closed: %d %v %q", status, err, buf.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.do(ctx, "GET", "/slow", "tok", nil, &buf)
	if err == nil {
		t.Fatal("a cancelled request succeeded")
	}
	var ne net.Error
	if !errors.As(err, &ne) && !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the cancelled request returned after %s", d)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmp-fhir/dmp-fhir/auth"
)

// benchPractitioner is the idNatPs of the professional every patient
// authorizes; benchProfession 10 is médecin.
const (
	benchPractitioner = "810000000042"
	benchProfession   = "10"
)

// tokens are the bearer tokens of the benchmark's callers, signed with the
// server's own key (read from the data directory, as `dmp-fhir token`).
type tokens struct {
	key          *auth.SigningKey
	system       string // a hospital information system: loads and ingests
	practitioner string // the consented médecin: reads, small writes
}

func newTokens(dataDir string) (*tokens, error) {
	key, err := auth.LoadOrCreateSigningKey(dataDir)
	if err != nil {
		return nil, err
	}
	t := &tokens{key: key}
	if t.system, err = key.Issue(auth.Claims{Kind: auth.KindSystem, ClientID: "dmpbench", Name: "dmpbench", Scope: "system/*.cruds"}, auth.MaxTTL); err != nil {
		return nil, err
	}
	t.practitioner, err = key.Issue(auth.Claims{Kind: auth.KindPractitioner, IDNatPs: benchPractitioner, Profession: benchProfession,
		Name: "Dr Banc d'Essai", Scope: "user/*.cruds"}, auth.MaxTTL)
	return t, err
}

func (t *tokens) patient(id string) (string, error) {
	return t.key.Issue(auth.Claims{Kind: auth.KindPatient, Patient: id, Scope: "patient/*.cruds"}, time.Hour)
}

// client talks to one server over HTTP/1.1 keep-alive connections, with
// as little work of its own as it can: it shares the machine's two cores
// with the server it measures, and net/http's client (two goroutines a
// connection, a channel hop each way, a parsed URL and header map a
// request) took about 85 µs of CPU a read, a fifth of a W1 request's. It
// speaks only what the server answers: a status line, headers, and a body
// of Content-Length bytes, chunked, or up to the close.
type client struct {
	addr, base string // host:port, and the path of the FHIR base (/fhir)
	maxIdle    int
	mu         sync.Mutex
	idle       []*benchConn
}

// benchConn is one connection and its reading buffer.
type benchConn struct {
	nc  net.Conn
	br  *bufio.Reader
	req []byte // the request being written, reused
}

// requestTimeout bounds a request whose context has no deadline.
const requestTimeout = 5 * time.Minute

func newClient(addr string, conns int) *client {
	return &client{addr: addr, base: "/fhir", maxIdle: conns + 16}
}

// do sends a request and reads the answer into buf (reset first). url is
// relative to the FHIR base ("" or "/..."), or absolute on the same server
// (a Bundle's next link).
func (c *client) do(ctx context.Context, method, url, token string, body []byte, buf *bytes.Buffer) (int, error) {
	path, err := c.requestPath(url)
	if err != nil {
		return 0, err
	}
	for attempt := 0; ; attempt++ {
		bc, reused, err := c.conn(ctx)
		if err != nil {
			return 0, err
		}
		status, keep, answered, err := bc.roundTrip(ctx, c.addr, method, path, token, body, buf)
		if err == nil {
			if keep {
				c.put(bc)
			} else {
				bc.nc.Close()
			}
			return status, nil
		}
		bc.nc.Close()
		// A kept connection the server closed while it was idle: the
		// request never reached it, so it is sent again on a new one.
		if reused && !answered && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return 0, err
	}
}

// requestPath is the request target of url.
func (c *client) requestPath(url string) (string, error) {
	if url == "" || url[0] == '/' {
		return c.base + url, nil
	}
	rest, ok := strings.CutPrefix(url, "http://"+c.addr)
	if !ok || rest == "" || rest[0] != '/' {
		return "", fmt.Errorf("%s is not on the server %s", url, c.addr)
	}
	return rest, nil
}

// conn takes an idle connection, or dials one.
func (c *client) conn(ctx context.Context) (bc *benchConn, reused bool, err error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		bc = c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return bc, true, nil
	}
	c.mu.Unlock()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, false, err
	}
	return &benchConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10)}, false, nil
}

// put keeps bc for a next request, or closes it when enough are idle.
func (c *client) put(bc *benchConn) {
	c.mu.Lock()
	if len(c.idle) < c.maxIdle {
		c.idle = append(c.idle, bc)
		bc = nil
	}
	c.mu.Unlock()
	if bc != nil {
		bc.nc.Close()
	}
}

// roundTrip writes one request and reads its answer. keep: the connection
// may carry another request; answered: some of the answer was read (the
// request reached the server).
func (bc *benchConn) roundTrip(ctx context.Context, host, method, path, token string, body []byte, buf *bytes.Buffer) (status int, keep, answered bool, err error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(requestTimeout)
	}
	if err := bc.nc.SetDeadline(deadline); err != nil {
		return 0, false, false, err
	}
	// The context's end interrupts the request as net/http's would.
	stop := context.AfterFunc(ctx, func() { bc.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	b := bc.req[:0]
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nAuthorization: Bearer "...)
	b = append(b, token...)
	b = append(b, "\r\nAccept: application/fhir+json\r\n"...)
	if body != nil {
		// Writes need no resource back: less to send and to read.
		b = append(b, "Content-Type: application/fhir+json\r\nPrefer: return=minimal\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	if len(body) <= 64<<10 {
		b = append(b, body...)
		body = nil
	}
	bc.req = b
	if _, err := bc.nc.Write(b); err != nil {
		return 0, false, false, err
	}
	if len(body) > 0 {
		if _, err := bc.nc.Write(body); err != nil {
			return 0, false, false, err
		}
	}
	if _, err := bc.br.Peek(1); err != nil {
		return 0, false, false, err
	}
	status, keep, err = readResponse(bc.br, method, buf)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return status, keep, true, err
}

// readResponse reads an HTTP/1.1 response from br: its status, whether the
// connection stays open, and its body into buf (reset first).
func readResponse(br *bufio.Reader, method string, buf *bytes.Buffer) (status int, keep bool, err error) {
	buf.Reset()
	line, err := readLine(br)
	if err != nil {
		return 0, false, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err = strconv.Atoi(code)
	if err != nil || !strings.HasPrefix(proto, "HTTP/1.") || status < 100 {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	keep = proto == "HTTP/1.1"
	length, chunked := int64(-1), false
	for {
		line, err := readLine(br)
		if err != nil {
			return 0, false, err
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return 0, false, fmt.Errorf("malformed header line %q", line)
		}
		value = strings.TrimSpace(value)
		switch {
		case strings.EqualFold(name, "Content-Length"):
			if length, err = strconv.ParseInt(value, 10, 64); err != nil || length < 0 {
				return 0, false, fmt.Errorf("malformed Content-Length %q", value)
			}
		case strings.EqualFold(name, "Transfer-Encoding"):
			chunked = strings.EqualFold(value, "chunked")
		case strings.EqualFold(name, "Connection"):
			if strings.EqualFold(value, "close") {
				keep = false
			}
		}
	}
	if status < 200 {
		// An interim answer (100 Continue): the final one follows.
		return readResponse(br, method, buf)
	}
	switch {
	case method == "HEAD" || status == 204 || status == 304:
	case chunked:
		err = readChunked(br, buf)
	case length >= 0:
		buf.Grow(int(length))
		_, err = io.CopyN(buf, br, length)
	default:
		_, err = buf.ReadFrom(br)
		keep = false
	}
	return status, keep && err == nil, err
}

// readChunked reads a chunked body into buf, trailers included.
func readChunked(br *bufio.Reader, buf *bytes.Buffer) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, up to the empty line
				line, err := readLine(br)
				if err != nil || line == "" {
					return err
				}
			}
		}
		if _, err := io.CopyN(buf, br, n); err != nil {
			return err
		}
		if line, err := readLine(br); err != nil || line != "" {
			return fmt.Errorf("chunk of %d bytes not followed by CRLF (%q, %v)", n, line, err)
		}
	}
}

// readLine reads one line, without its CRLF.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", errors.New("header line longer than 16 KiB")
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return string(bytes.TrimRight(line, "\r\n")), nil
}

// call is do for the set-up steps: any status but want is an error.
func (c *client) call(ctx context.Context, method, url, token string, body []byte, want int) ([]byte, error) {
	var buf bytes.Buffer
	status, err := c.do(ctx, method, url, token, body, &buf)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if status != want {
		return nil, fmt.Errorf("%s %s: %d, want %d: %.300s", method, url, status, want, buf.String())
	}
	return buf.Bytes(), nil
}

// parameters is a FHIR Parameters body of string values.
func parameters(kv ...string) []byte {
	type param struct {
		Name        string `json:"name"`
		ValueString string `json:"valueString"`
	}
	p := struct {
		ResourceType string  `json:"resourceType"`
		Parameter    []param `json:"parameter"`
	}{ResourceType: "Parameters"}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Parameter = append(p.Parameter, param{kv[i], kv[i+1]})
	}
	b, _ := json.Marshal(p)
	return b
}

// Scanning a Bundle without decoding it: the load generator shares two
// cores with the server, so it does as little as it can.
var (
	fullURLKey  = []byte(`"fullUrl":`)
	relNext     = []byte(`"relation":"next"`)
	urlKey      = []byte(`"url":`)
	locationKey = []byte(`"location":`)
)

// entries counts a Bundle's entries.
func entries(body []byte) int { return bytes.Count(body, fullURLKey) }

// nextLink returns a Bundle's next link, "" when none.
func nextLink(body []byte) string {
	i := bytes.Index(body, relNext)
	if i < 0 {
		return ""
	}
	rest := body[i+len(relNext):]
	j := bytes.Index(rest, urlKey)
	if j < 0 {
		return ""
	}
	return jsonString(rest[j+len(urlKey):])
}

// jsonString decodes the JSON string at the start of b.
func jsonString(b []byte) string {
	b = bytes.TrimLeft(b, " ")
	if len(b) == 0 || b[0] != '"' {
		return ""
	}
	end := 1
	for end < len(b) && b[end] != '"' {
		if b[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(b) {
		return ""
	}
	var s string
	if json.Unmarshal(b[:end+1], &s) != nil {
		return ""
	}
	return s
}

// locations returns the response.location of each entry of a
// transaction-response Bundle, in order.
func locations(body []byte) []string {
	var out []string
	for {
		i := bytes.Index(body, locationKey)
		if i < 0 {
			return out
		}
		body = body[i+len(locationKey):]
		out = append(out, jsonString(body))
	}
}

package api

// Documents and binaries: where a document's bytes live and how they are
// served.
//
// Content up to the inline limit (Config.InlineMaxBytes) stays in the
// resource row: a DocumentReference's attachment.data, a Binary's data.
// Larger content goes to the engine's blob storage (store.Blobs), named by
// the SHA-256 of its bytes:
//   - a Binary keeps contentType and securityContext in its row, and a
//     pointer to its blob in meta.extension (blobExtension) instead of data;
//   - a DocumentReference's large attachment becomes a Binary of its own
//     (securityContext: the DocumentReference), and the attachment keeps
//     url "Binary/<id>", size and hash (SHA-1, base64) without data. The
//     Binary and the DocumentReference are written in one store transaction.
//
// The blob is written (durably) before the rows that point at it, so that a
// committed row never points at a missing blob; a transaction that fails
// after that leaves an unreferenced blob behind, which a later upload of the
// same bytes reuses.
//
// GET /fhir/Binary/{id} answers the raw bytes with the Binary's content
// type, or the Binary resource with its data (FHIR JSON) on
// Accept: application/fhir+json or _format=json. POST and PUT of a Binary
// take a Binary resource, or the raw bytes under their own Content-Type with
// X-Security-Context naming the resource the Binary belongs to.

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// DefaultInlineMaxBytes is the largest content kept inside a resource row:
// 64 KiB.
const DefaultInlineMaxBytes = 64 << 10

// blobExtension marks, in a stored Binary's meta.extension, the blob that
// holds its bytes. It never leaves the server: answers carry the data
// itself, and a client's own extension of that URL is dropped on write.
const blobExtension = "https://dmp-fhir.fr/StructureDefinition/binary-blob"

// inlineMax is the largest content, in bytes, kept inside a resource row.
func (s *Server) inlineMax() int64 {
	switch {
	case s.cfg.InlineMaxBytes > 0:
		return s.cfg.InlineMaxBytes
	case s.cfg.InlineMaxBytes < 0:
		return 0
	}
	return DefaultInlineMaxBytes
}

// contentOps are the store operations of a request with the content rules
// applied to writes of Binary and DocumentReference resources. own is true
// when Ops is the store itself (no transaction yet): a write that adds a
// Binary then runs in a transaction of its own.
type contentOps struct {
	store.Ops
	s   *Server
	own bool
}

func (s *Server) withContent(ops store.Ops, own bool) store.Ops {
	return contentOps{Ops: ops, s: s, own: own}
}

func (o contentOps) Create(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
	var r *store.Resource
	err := o.write(ctx, typ, id, body, func(ops store.Ops, body []byte) (err error) {
		r, err = ops.Create(ctx, typ, id, body)
		return err
	})
	return clientView(r), err
}

func (o contentOps) Put(ctx context.Context, typ, id string, body []byte, ifMatch int64) (*store.Resource, store.Outcome, error) {
	var r *store.Resource
	var out store.Outcome
	err := o.write(ctx, typ, id, body, func(ops store.Ops, body []byte) (err error) {
		r, out, err = ops.Put(ctx, typ, id, body, ifMatch)
		return err
	})
	return clientView(r), out, err
}

// write stores body (through fn) in its stored form; a DocumentReference's
// attachments moved out make Binaries written with it, all or nothing.
func (o contentOps) write(ctx context.Context, typ, id string, body []byte, fn func(store.Ops, []byte) error) error {
	switch typ {
	case "Binary":
		stored, err := o.s.storedBinary(ctx, body)
		if err != nil {
			return err
		}
		return fn(o.Ops, stored)
	case "DocumentReference":
		stored, extras, err := o.s.storedDocument(ctx, id, body)
		if err != nil {
			return err
		}
		if len(extras) == 0 {
			return fn(o.Ops, stored)
		}
		all := func(ops store.Ops) error {
			for _, x := range extras {
				if _, _, err := ops.Put(ctx, "Binary", x.id, x.body, 0); err != nil {
					return err
				}
			}
			return fn(ops, stored)
		}
		if !o.own {
			err = all(o.Ops)
		} else if err = o.s.store.Transaction(ctx, all); errors.Is(err, store.ErrNoTransactions) {
			// A MongoDB without transactions: the Binaries first, so that a
			// failure in between leaves a Binary whose document does not
			// exist, which nobody may read (mayReadBinary).
			err = all(o.Ops)
		}
		if err == nil {
			if a := accessOf(ctx); a != nil {
				for _, x := range extras {
					a.touch(nil, "Binary/"+x.id)
				}
			}
		}
		return err
	}
	return fn(o.Ops, body)
}

// clientView is a written resource as answered: a Binary without its blob
// pointer (its data, when in blob storage, is read at its URL).
func clientView(r *store.Resource) *store.Resource {
	if r == nil || r.Type != "Binary" || r.Body == nil {
		return r
	}
	if obj, err := fhir.ParseObject(r.Body); err == nil {
		if obj, ptr := withoutBlobPointer(obj); ptr != "" {
			if b, err := obj.MarshalJSON(); err == nil {
				v := *r
				v.Body = b
				return &v
			}
		}
	}
	return r
}

// decodeData reads a base64Binary value (FHIR allows whitespace in it).
func decodeData(raw json.RawMessage, at string) ([]byte, error) {
	var s string
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		s = string(raw[1 : n-1]) // base64 has no escapes: no need to decode a JSON string
	} else if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fhir.Invalid(at, "data must be a base64 string")
	}
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fhir.Invalid(at, "data is not valid base64: "+err.Error())
	}
	return b, nil
}

// putBlob stores data in blob storage under the hex SHA-256 of its bytes.
func (s *Server) putBlob(ctx context.Context, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	if err := s.store.Blobs().Put(ctx, id, bytes.NewReader(data)); err != nil {
		return "", err
	}
	return id, nil
}

// storedBinary is a Binary as stored: a client's blob pointer dropped, data
// over the inline limit moved to blob storage.
func (s *Server) storedBinary(ctx context.Context, body []byte) ([]byte, error) {
	obj, err := fhir.ParseObject(body)
	if err != nil {
		return nil, err
	}
	obj, forged := withoutBlobPointer(obj)
	raw := obj.Get("data")
	if raw == nil || string(raw) == "null" {
		if forged == "" {
			return body, nil
		}
		return obj.MarshalJSON()
	}
	data, err := decodeData(raw, "Binary.data")
	if err != nil {
		return nil, err
	}
	if int64(len(data)) <= s.inlineMax() {
		if forged == "" {
			return body, nil
		}
		return obj.MarshalJSON()
	}
	id, err := s.putBlob(ctx, data)
	if err != nil {
		return nil, err
	}
	return withBlobPointer(obj.Without("data"), id).MarshalJSON()
}

// extraBinary is a Binary made of a DocumentReference's attachment.
type extraBinary struct {
	id   string
	body []byte
}

// storedDocument is a DocumentReference as stored: each attachment's data
// checked against its hash and size, and data over the inline limit moved
// to a Binary of its own, returned in extras.
func (s *Server) storedDocument(ctx context.Context, docID string, body []byte) ([]byte, []extraBinary, error) {
	obj, err := fhir.ParseObject(body)
	if err != nil {
		return nil, nil, err
	}
	rawContent := obj.Get("content")
	if rawContent == nil {
		return body, nil, nil
	}
	var content []json.RawMessage
	if err := json.Unmarshal(rawContent, &content); err != nil {
		return body, nil, nil // the validator already refused a malformed content
	}
	var extras []extraBinary
	for i, raw := range content {
		at := "DocumentReference.content[" + strconv.Itoa(i) + "].attachment"
		item, err := fhir.ParseObject(raw)
		if err != nil || item.Get("attachment") == nil {
			continue
		}
		att, err := fhir.ParseObject(item.Get("attachment"))
		if err != nil {
			continue
		}
		rawData := att.Get("data")
		if rawData == nil {
			continue
		}
		data, err := decodeData(rawData, at+".data")
		if err != nil {
			return nil, nil, err
		}
		sum := sha1.Sum(data)
		hash := base64.StdEncoding.EncodeToString(sum[:])
		if err := checkAttachment(att, at, hash, int64(len(data))); err != nil {
			return nil, nil, err
		}
		if int64(len(data)) <= s.inlineMax() {
			continue
		}
		if att.Get("url") != nil {
			return nil, nil, fhir.Invalid(at+".url", "data larger than "+formatBytes(s.inlineMax())+" is stored as a Binary that the attachment's url points at: send data or url, not both")
		}
		blob, err := s.putBlob(ctx, data)
		if err != nil {
			return nil, nil, err
		}
		// The Binary's id follows from the document and the bytes: the same
		// update sent again makes no new version of either.
		idSum := sha256.Sum256([]byte("DocumentReference/" + docID + "\x00" + blob))
		binID := hex.EncodeToString(idSum[:20])
		contentType := att.Get("contentType")
		if contentType == nil {
			contentType = json.RawMessage(`"application/octet-stream"`)
		}
		ctxRef, _ := json.Marshal(map[string]string{"reference": "DocumentReference/" + docID})
		bin := fhir.Object{{Key: "resourceType", Value: json.RawMessage(`"Binary"`)}}
		if author := authorIn(body); author != "" {
			// The document's author wrote its Binary too (feeding rules).
			if stamped, err := withAuthor([]byte(`{"resourceType":"Binary"}`), author); err == nil {
				bin, _ = fhir.ParseObject(stamped)
			}
		}
		bin = withBlobPointer(append(bin,
			fhir.Field{Key: "contentType", Value: contentType},
			fhir.Field{Key: "securityContext", Value: ctxRef},
		), blob)
		binBody, err := bin.MarshalJSON()
		if err != nil {
			return nil, nil, err
		}
		extras = append(extras, extraBinary{id: binID, body: binBody})
		url, _ := json.Marshal("Binary/" + binID)
		hashRaw, _ := json.Marshal(hash)
		att = att.Without("data").Set("url", url).Set("size", json.RawMessage(strconv.Itoa(len(data)))).Set("hash", hashRaw)
		attRaw, err := att.MarshalJSON()
		if err != nil {
			return nil, nil, err
		}
		if content[i], err = item.Set("attachment", attRaw).MarshalJSON(); err != nil {
			return nil, nil, err
		}
	}
	if len(extras) == 0 {
		return body, nil, nil
	}
	contentRaw, err := json.Marshal(content)
	if err != nil {
		return nil, nil, err
	}
	stored, err := obj.Set("content", contentRaw).MarshalJSON()
	return stored, extras, err
}

// checkAttachment refuses an attachment whose hash or size is not the one
// of its bytes.
func checkAttachment(att fhir.Object, at, hash string, size int64) error {
	if raw := att.Get("hash"); raw != nil {
		var got string
		if json.Unmarshal(raw, &got) != nil || got != hash {
			return fhir.Unprocessable(at+".hash", "hash is not the SHA-1 (base64) of the attachment's bytes, which is "+hash)
		}
	}
	if raw := att.Get("size"); raw != nil {
		var got int64
		if json.Unmarshal(raw, &got) != nil || got != size {
			return fhir.Unprocessable(at+".size", "size is not the number of bytes of the attachment's data, which is "+strconv.FormatInt(size, 10))
		}
	}
	return nil
}

// withBlobPointer adds the pointer to blob in meta.extension.
func withBlobPointer(obj fhir.Object, blob string) fhir.Object {
	var meta fhir.Object
	if raw := obj.Get("meta"); raw != nil {
		meta, _ = fhir.ParseObject(raw)
	}
	var ext []json.RawMessage
	if raw := meta.Get("extension"); raw != nil {
		json.Unmarshal(raw, &ext)
	}
	ptr, _ := json.Marshal(map[string]string{"url": blobExtension, "valueString": blob})
	ext = append(ext, ptr)
	extRaw, _ := json.Marshal(ext)
	metaRaw, _ := meta.Set("extension", extRaw).MarshalJSON()
	if obj.Get("meta") != nil {
		return obj.Set("meta", metaRaw)
	}
	// meta goes after resourceType (and id), where FHIR writes it.
	out := fhir.Object{}
	placed := false
	for _, f := range obj {
		if !placed && f.Key != "resourceType" && f.Key != "id" {
			out = append(out, fhir.Field{Key: "meta", Value: metaRaw})
			placed = true
		}
		out = append(out, f)
	}
	if !placed {
		out = append(out, fhir.Field{Key: "meta", Value: metaRaw})
	}
	return out
}

// withoutBlobPointer removes the blob pointer from meta.extension (and meta
// or its extension when nothing else is left in them), returning the blob id.
func withoutBlobPointer(obj fhir.Object) (fhir.Object, string) {
	raw := obj.Get("meta")
	if raw == nil {
		return obj, ""
	}
	meta, err := fhir.ParseObject(raw)
	if err != nil || meta.Get("extension") == nil {
		return obj, ""
	}
	var ext []json.RawMessage
	if json.Unmarshal(meta.Get("extension"), &ext) != nil {
		return obj, ""
	}
	blob := ""
	kept := ext[:0:0]
	for _, e := range ext {
		var x struct {
			URL         string `json:"url"`
			ValueString string `json:"valueString"`
		}
		if json.Unmarshal(e, &x) == nil && x.URL == blobExtension {
			blob = x.ValueString
			continue
		}
		kept = append(kept, e)
	}
	if blob == "" && len(kept) == len(ext) {
		return obj, ""
	}
	if blob == "" {
		blob = "-" // a pointer without a blob: dropped all the same
	}
	if len(kept) == 0 {
		meta = meta.Without("extension")
	} else {
		extRaw, _ := json.Marshal(kept)
		meta = meta.Set("extension", extRaw)
	}
	if len(meta) == 0 {
		return obj.Without("meta"), blob
	}
	metaRaw, _ := meta.MarshalJSON()
	return obj.Set("meta", metaRaw), blob
}

// binaryParts reads what the server needs of a stored Binary.
func binaryParts(body []byte) (contentType, blob string, data []byte, err error) {
	obj, err := fhir.ParseObject(body)
	if err != nil {
		return "", "", nil, err
	}
	json.Unmarshal(obj.Get("contentType"), &contentType)
	_, blob = withoutBlobPointer(obj)
	if raw := obj.Get("data"); raw != nil {
		if data, err = decodeData(raw, "Binary.data"); err != nil {
			return "", "", nil, err
		}
	}
	return contentType, blob, data, nil
}

// binaryContent opens a stored Binary's bytes, wherever they are.
func (s *Server) binaryContent(ctx context.Context, r *store.Resource) (contentType string, rc io.ReadCloser, size int64, err error) {
	contentType, blob, data, err := binaryParts(r.Body)
	if err != nil {
		return "", nil, 0, err
	}
	if blob == "" || blob == "-" {
		return contentType, io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
	}
	rc, size, err = s.store.Blobs().Get(ctx, blob)
	if errors.Is(err, store.ErrNotFound) {
		// A row points at a blob that is not there: data loss, not a
		// client's mistake.
		return "", nil, 0, errors.New("the content of " + r.Type + "/" + r.ID + " is missing from blob storage (blob " + blob + ")")
	}
	return contentType, rc, size, err
}

// binaryJSON is a stored Binary as a FHIR resource: its data inline.
func (s *Server) binaryJSON(ctx context.Context, r *store.Resource) ([]byte, error) {
	obj, err := fhir.ParseObject(r.Body)
	if err != nil {
		return nil, err
	}
	obj, blob := withoutBlobPointer(obj)
	if blob == "" || blob == "-" {
		return obj.MarshalJSON()
	}
	_, rc, _, err := s.binaryContent(ctx, r)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	enc := base64.NewEncoder(base64.StdEncoding, &buf)
	buf.WriteByte('"')
	if _, err := io.Copy(enc, rc); err != nil {
		return nil, err
	}
	enc.Close()
	buf.WriteByte('"')
	return obj.Set("data", buf.Bytes()).MarshalJSON()
}

// answerBinary answers a read of a Binary the caller may see: the raw
// bytes, or the FHIR resource when the client asks for FHIR JSON.
func (s *Server) answerBinary(c *gin.Context, r *store.Resource) {
	contentType, _, _, err := binaryParts(r.Body)
	if err != nil {
		s.fail(c, err)
		return
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	asFHIR, ok := binaryForm(c, contentType)
	if !ok {
		s.writeOutcome(c, http.StatusNotAcceptable, fhir.Issue{Code: "not-supported", Diagnostics: r.Type + "/" + r.ID +
			" is " + contentType + ": accept it (or */*) for its bytes, or application/fhir+json for the Binary resource"})
		return
	}
	if asFHIR {
		body, err := s.binaryJSON(c, r)
		if err != nil {
			s.fail(c, err)
			return
		}
		s.versionHeaders(c, r)
		s.writeJSON(c, http.StatusOK, body)
		return
	}
	_, rc, size, err := s.binaryContent(c, r)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer rc.Close()
	s.versionHeaders(c, r)
	// The bytes are a client's: never sniffed or run as a page of this origin.
	c.DataFromReader(http.StatusOK, size, contentType, rc, map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "sandbox; default-src 'none'",
	})
}

// binaryForm decides, from _format and Accept, between a Binary's bytes
// (asFHIR false) and its FHIR JSON form; ok is false when the client
// accepts neither. No Accept, or */*, is the bytes; FHIR JSON wins a tie.
func binaryForm(c *gin.Context, contentType string) (asFHIR, ok bool) {
	if c.Query("_format") != "" { // negotiate let only JSON through
		return true, true
	}
	accept := strings.TrimSpace(c.GetHeader("Accept"))
	if accept == "" {
		return false, true
	}
	ct, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		ct = strings.ToLower(contentType)
	}
	bestRaw, bestFHIR := -1.0, -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q <= 0 {
			continue
		}
		switch {
		case mt == fhirJSON || mt == "application/json+fhir" || (mt == "application/json" && ct != "application/json"):
			bestFHIR = max(bestFHIR, q)
		case mt == "*/*" || mt == ct || strings.HasSuffix(mt, "/*") && strings.HasPrefix(ct, strings.TrimSuffix(mt, "*")):
			bestRaw = max(bestRaw, q)
		}
	}
	if bestFHIR < 0 && bestRaw < 0 {
		return false, false
	}
	return bestFHIR >= bestRaw, true
}

// binaryRead reports a read of a Binary instance, whose Accept may name any
// media type (XML for a CDA document, say): negotiate leaves it to answerBinary.
func binaryRead(c *gin.Context) bool {
	return c.Request.Method == http.MethodGet && c.Param("type") == "Binary" && c.Param("id") != ""
}

// rawBinaryUpload reports a POST or PUT of a Binary that sends the content
// itself under its own media type rather than a FHIR Binary resource.
func rawBinaryUpload(c *gin.Context) bool {
	if c.Param("type") != "Binary" {
		return false
	}
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil {
		return false // none, or unreadable: the FHIR path answers
	}
	switch mt {
	case fhirJSON, "application/json", "application/json+fhir", "application/fhir+xml", "application/xml+fhir":
		return false
	}
	return true
}

// rawBinaryResource reads a raw upload into a Binary resource: contentType
// from Content-Type, securityContext from X-Security-Context, data the
// body (within the body size limit).
func (s *Server) rawBinaryResource(c *gin.Context, id string) ([]byte, error) {
	mt, params, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	data, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fhir.Invalid("", "the request has no body; send the content, or a Binary resource in FHIR JSON")
	}
	obj := fhir.Object{{Key: "resourceType", Value: json.RawMessage(`"Binary"`)}}
	if id != "" {
		raw, _ := json.Marshal(id)
		obj = append(obj, fhir.Field{Key: "id", Value: raw})
	}
	ct, _ := json.Marshal(mime.FormatMediaType(mt, params))
	obj = append(obj, fhir.Field{Key: "contentType", Value: ct})
	if sc := strings.TrimSpace(c.GetHeader("X-Security-Context")); sc != "" {
		typ, ref, ok := strings.Cut(sc, "/")
		if _, known := fhir.LookupType(typ); !ok || !known || !fhir.ValidID(ref) {
			return nil, fhir.Invalid("Binary.securityContext", "X-Security-Context must be a reference such as DocumentReference/123, not "+strconv.Quote(sc))
		}
		raw, _ := json.Marshal(map[string]string{"reference": sc})
		obj = append(obj, fhir.Field{Key: "securityContext", Value: raw})
	}
	if err := s.validator.Validate(mustJSON(obj)); err != nil {
		return nil, err // the contentType or securityContext, checked without the bytes
	}
	encoded, _ := json.Marshal(base64.StdEncoding.EncodeToString(data))
	return obj.Set("data", encoded).MarshalJSON()
}

func mustJSON(o fhir.Object) []byte {
	b, _ := o.MarshalJSON()
	return b
}

// createRawBinary serves POST /fhir/Binary with raw content.
func (s *Server) createRawBinary(c *gin.Context) {
	if !s.allow(c, "Binary", auth.OpCreate, "create") {
		return
	}
	body, err := s.rawBinaryResource(c, "")
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.mayWrite(c, "Binary", body); err != nil {
		s.fail(c, err)
		return
	}
	var r *store.Resource
	id := s.assignedID(c)
	err = s.writing(c, "Binary", body, func(ops store.Ops) error {
		var err error
		r, err = s.createIn(c, ops, "Binary", id, body)
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerWrite(c, http.StatusCreated, r)
}

// updateRawBinary serves PUT /fhir/Binary/{id} with raw content.
func (s *Server) updateRawBinary(c *gin.Context) {
	if !s.allow(c, "Binary", auth.OpUpdate, "update") {
		return
	}
	ifMatch, err := parseIfMatch(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	body, err := s.rawBinaryResource(c, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.mayWrite(c, "Binary", body); err != nil {
		s.fail(c, err)
		return
	}
	var r *store.Resource
	var out store.Outcome
	err = s.writing(c, "Binary", body, func(ops store.Ops) error {
		var err error
		r, out, err = s.putIn(c, ops, "Binary", c.Param("id"), body, ifMatch)
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerPut(c, r, out)
}

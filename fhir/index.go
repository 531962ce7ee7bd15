package fhir

import (
	"bytes"
	"encoding/json"
)

// Token is one coded value a resource can be found by: a system and a code
// under a search parameter name (identifier, code, ...).
type Token struct {
	Param  string
	System string
	Code   string
}

// Index holds the values extracted from a resource at write time; the store
// keeps them beside the resource so that lookups never read resource bodies.
// The search issue adds the other parameter kinds (reference, date, string,
// quantity, uri, number) here.
type Index struct {
	Tokens []Token
}

// ExtractIndex extracts the index values of a resource body. Today: its
// business identifiers (the `identifier` search parameter), which conditional
// create and update rely on.
func ExtractIndex(body []byte) Index {
	var doc struct {
		Identifier json.RawMessage `json:"identifier"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if dec.Decode(&doc) != nil || doc.Identifier == nil {
		return Index{}
	}
	type identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	var ids []identifier
	if json.Unmarshal(doc.Identifier, &ids) != nil {
		// Some types (Bundle, DocumentReference.masterIdentifier's kin) carry a single identifier.
		var one identifier
		if json.Unmarshal(doc.Identifier, &one) != nil {
			return Index{}
		}
		ids = []identifier{one}
	}
	var ix Index
	seen := map[Token]bool{}
	for _, id := range ids {
		if id.Value == "" {
			continue
		}
		tok := Token{Param: "identifier", System: id.System, Code: id.Value}
		if !seen[tok] {
			seen[tok] = true
			ix.Tokens = append(ix.Tokens, tok)
		}
	}
	return ix
}

package auth

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// habilitationsJSON is the default matrice d'habilitations (data file with
// its sources; see its "about").
//
//go:embed data/habilitations.json
var habilitationsJSON []byte

// Habilitations says which document types each profession may consult (DMP
// rule 13: the matrix annexed to the arrêté of 26 October 2023).
type Habilitations struct {
	allowByDefault bool
	deny           map[string]map[string]bool // profession -> type code -> denied
}

// DefaultHabilitations is the matrix of the embedded data file.
func DefaultHabilitations() *Habilitations {
	h, err := ParseHabilitations(habilitationsJSON)
	if err != nil {
		panic("auth: embedded habilitations: " + err.Error())
	}
	return h
}

// ParseHabilitations reads a matrix in the layout of data/habilitations.json.
func ParseHabilitations(data []byte) (*Habilitations, error) {
	var f struct {
		Default     string `json:"default"`
		Professions map[string]struct {
			Deny []string `json:"deny"`
		} `json:"professions"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Default != "allow" && f.Default != "deny" {
		return nil, fmt.Errorf("default must be allow or deny, not %q", f.Default)
	}
	h := &Habilitations{allowByDefault: f.Default == "allow", deny: map[string]map[string]bool{}}
	for prof, p := range f.Professions {
		h.deny[prof] = map[string]bool{}
		for _, code := range p.Deny {
			h.deny[prof][code] = true
		}
	}
	return h, nil
}

// Allows reports whether a profession may consult a document of that type.
func (h *Habilitations) Allows(profession, typeCode string) bool {
	if h.deny[profession][typeCode] {
		return false
	}
	return h.allowByDefault
}

// Denied lists the type codes a profession may not consult (for a search
// filter).
func (h *Habilitations) Denied(profession string) []string {
	var out []string
	for code := range h.deny[profession] {
		out = append(out, code)
	}
	return out
}

// RuleHabilitation names a refusal by the matrix.
const RuleHabilitation = "habilitation"

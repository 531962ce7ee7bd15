package fhir

import "sort"

// What a search parameter's expression reads of a resource, so that index
// extraction decodes only those members: a read's consent decision needs
// the patient references and the labels of a resource, the AuditEvent of a
// search lists 50 resources whose entity types and roles no parameter
// reads, and a DocumentReference's base64 content is read by none.

// fpPath is a path of member names from the resource; its subtree is read
// whole.
type fpPath []string

// fpReads returns the paths expression a reads from its focus (a resource).
// ok is false when it cannot tell (a function with no focus, the whole
// resource as a value): then every member is read. The lexer refuses
// variables (%resource), so no expression reads from elsewhere.
func fpReads(a *fpAST) ([]fpPath, bool) {
	out, reads, ok := fpWalk(a)
	if !ok {
		return nil, false
	}
	all := make([]fpPath, 0, len(reads)+len(out))
	for _, p := range append(reads, out...) {
		if len(p.steps) == 0 {
			return nil, false // the resource itself is a value
		}
		all = append(all, p.steps)
	}
	return all, true
}

// fpWalkPath is a path an expression's items lie at; opaque when they lie
// somewhere below it (after a function), where it is read whole.
type fpWalkPath struct {
	steps  fpPath
	opaque bool
}

// fpWalk returns the paths of the items a yields (out) and of what it reads
// besides (reads, whole).
func fpWalk(a *fpAST) (out, reads []fpWalkPath, ok bool) {
	switch a.kind {
	case akString, akBool, akNumber:
		return nil, nil, true
	case akIdent:
		switch {
		case a.name == "$this" || a.name != "" && a.name[0] >= 'A' && a.name[0] <= 'Z':
			return []fpWalkPath{{}}, nil, true // the focus (a type name filters it)
		case a.name == "" || a.name[0] == '$':
			return nil, nil, false
		default:
			return []fpWalkPath{{steps: fpPath{a.name}}}, nil, true
		}
	case akDot:
		left, reads, ok := fpWalk(a.kids[0])
		if !ok {
			return nil, nil, false
		}
		r := a.kids[1]
		switch r.kind {
		case akIdent:
			if r.name == "" || r.name[0] == '$' {
				return nil, nil, false
			}
			if r.name[0] >= 'A' && r.name[0] <= 'Z' {
				return left, reads, true // a type name: the same items
			}
			for _, p := range left {
				if p.opaque {
					out = append(out, p)
				} else {
					out = append(out, fpWalkPath{steps: append(append(fpPath(nil), p.steps...), r.name)})
				}
			}
			return out, reads, true
		case akFunc:
			// A function reads its focus (and, for resolve, the contained
			// resources, always decoded): the focus is read whole;
			// extension('url') reads the focus's extensions.
			for _, p := range left {
				steps := p.steps
				if r.name == "extension" && !p.opaque {
					steps = append(append(fpPath(nil), steps...), "extension")
				}
				out = append(out, fpWalkPath{steps: steps, opaque: true})
			}
			return out, reads, true
		}
		return nil, nil, false
	case akTypeOp:
		left, reads, ok := fpWalk(a.kids[0])
		if !ok {
			return nil, nil, false
		}
		for _, p := range left {
			out = append(out, fpWalkPath{steps: p.steps, opaque: true})
		}
		return out, reads, true
	case akBinary:
		lo, lr, ok1 := fpWalk(a.kids[0])
		ro, rr, ok2 := fpWalk(a.kids[1])
		if !ok1 || !ok2 {
			return nil, nil, false
		}
		return append(lo, ro...), append(lr, rr...), true
	}
	return nil, nil, false // a function with no focus
}

// memberTrie is the members of a resource some parameters read: a member
// whose node is whole is decoded with everything in it, one with kids only
// with the kids' members (in every element of an array).
type memberTrie struct {
	whole bool
	kids  map[string]*memberTrie
	names []string // of kids, for the choice-type test of member
}

// alwaysRead are the members every extraction needs: the type, and the
// contained resources resolve() looks references up in.
var alwaysRead = []string{"resourceType", "id", "contained"}

// newMemberTrie returns the trie of paths; nil when paths say nothing can
// be left out.
func newMemberTrie(paths []fpPath) *memberTrie {
	t := &memberTrie{kids: map[string]*memberTrie{}}
	for _, p := range paths {
		n := t
		for _, step := range p {
			if n.whole {
				break
			}
			k := n.kids[step]
			if k == nil {
				k = &memberTrie{kids: map[string]*memberTrie{}}
				n.kids[step] = k
			}
			n = k
		}
		n.whole, n.kids = true, nil
	}
	for _, name := range alwaysRead {
		t.kids[name] = &memberTrie{whole: true}
	}
	t.index()
	return t
}

func (t *memberTrie) index() {
	t.names = t.names[:0]
	for name, k := range t.kids {
		t.names = append(t.names, name)
		k.index()
	}
	sort.Strings(t.names)
}

// member returns the node of key: the member name itself, a choice type's
// member (value for valueQuantity) or a primitive's extensions (_value);
// nil when no parameter reads it.
func (t *memberTrie) member(key string) *memberTrie {
	if k := t.kids[key]; k != nil {
		return k
	}
	name := key
	if len(name) > 1 && name[0] == '_' {
		name = name[1:]
		if k := t.kids[name]; k != nil {
			return k
		}
	}
	var found *memberTrie
	for _, n := range t.names {
		if len(name) > len(n) && name[:len(n)] == n && name[len(n)] >= 'A' && name[len(n)] <= 'Z' {
			k := t.kids[n]
			if found != nil && found != k {
				return &memberTrie{whole: true} // two readers of one member: all of it
			}
			found = k
		}
	}
	return found
}

package auth

import "strings"

// Interaction is one of the five SMART App Launch v2 permissions a scope
// grants on a resource type: c (create), r (read), u (update), d (delete)
// and s (search).
type Interaction string

// The interactions, in the order SMART v2 writes them.
const (
	OpCreate Interaction = "c"
	OpRead   Interaction = "r"
	OpUpdate Interaction = "u"
	OpDelete Interaction = "d"
	OpSearch Interaction = "s"
)

// scopeAllOps is the v2 permission string of every interaction, in order.
const scopeAllOps = "cruds"

// String returns the interaction's name (create, read, update, delete,
// search); the one-letter code is the value itself.
func (op Interaction) String() string {
	switch op {
	case OpCreate:
		return "create"
	case OpRead:
		return "read"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpSearch:
		return "search"
	}
	return string(op)
}

// Scopes is the set of OAuth2 scopes a token carries, as SMART App Launch
// v2 (and v1) clinical scopes: context/ResourceType.permissions, e.g.
// patient/*.rs, user/Observation.rs, system/*.cu, or in v1 syntax
// patient/Observation.read (= rs), user/*.write (= cud), user/*.* (=
// cruds).
//
// The context (patient, user or system) is not a filter here: the caller's
// kind and the consent decision say whose data the caller reaches; the
// scope only says which interactions on which resource types. Scopes this
// package does not understand (openid, fhirUser, launch, offline_access,
// PSC's scope_all, v2 scopes with a ?query restriction, malformed ones) grant
// nothing but are kept, so String returns what the token said.
//
// The zero value grants nothing.
type Scopes struct {
	raw    []string
	grants []scopeGrant
}

// scopeGrant is one understood clinical scope.
type scopeGrant struct {
	context  string // patient | user | system
	resource string // a resource type or "*"
	ops      string // a subset of "cruds"
}

// ParseScopes reads a space-separated scope string (the OAuth2 "scope"
// parameter or claim).
func ParseScopes(s string) Scopes {
	var sc Scopes
	for _, f := range strings.Fields(s) {
		sc.raw = append(sc.raw, f)
		if g, ok := parseScope(f); ok {
			sc.grants = append(sc.grants, g)
		}
	}
	return sc
}

// parseScope reads one clinical scope; ok is false for anything else.
func parseScope(s string) (scopeGrant, bool) {
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return scopeGrant{}, false
	}
	// A v2 scope may narrow itself with a query (patient/Observation.rs?category=laboratory).
	// We cannot enforce the restriction here, and granting the unrestricted
	// scope would give more than the patient or the client agreed to.
	if strings.ContainsAny(rest, "?#") {
		return scopeGrant{}, false
	}
	resource, perms, ok := strings.Cut(rest, ".")
	if !ok || !scopeResourceOK(resource) {
		return scopeGrant{}, false
	}
	var ops string
	switch perms {
	case "read": // v1
		ops = "rs"
	case "write": // v1
		ops = "cud"
	case "*": // v1
		ops = scopeAllOps
	default:
		// v2: a non-empty subset of c r u d s, in that order, each once.
		next := 0
		for i := 0; i < len(perms); i++ {
			j := strings.IndexByte(scopeAllOps[next:], perms[i])
			if j < 0 {
				return scopeGrant{}, false
			}
			next += j + 1
		}
		if perms == "" {
			return scopeGrant{}, false
		}
		ops = perms
	}
	return scopeGrant{context: ctx, resource: resource, ops: ops}, true
}

// scopeResourceOK reports whether s is "*" or has the shape of a FHIR
// resource type name (an upper-case letter then letters).
func scopeResourceOK(s string) bool {
	if s == "*" {
		return true
	}
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// Allows reports whether some scope grants op on resourceType.
func (sc Scopes) Allows(resourceType string, op Interaction) bool {
	if len(op) != 1 || !strings.Contains(scopeAllOps, string(op)) {
		return false
	}
	for _, g := range sc.grants {
		if (g.resource == "*" || g.resource == resourceType) && strings.Contains(g.ops, string(op)) {
			return true
		}
	}
	return false
}

// Missing returns the narrowest scope that would allow op on resourceType
// (e.g. "user/Observation.r"), for a 403 message, or "" when the scopes
// already allow it. The context is that of the first clinical scope the
// token has ("user" when it has none); Caller.MissingScope picks it from
// the caller's kind instead.
func (sc Scopes) Missing(resourceType string, op Interaction) string {
	if sc.Allows(resourceType, op) {
		return ""
	}
	ctx := "user"
	if len(sc.grants) > 0 {
		ctx = sc.grants[0].context
	}
	return ctx + "/" + resourceType + "." + string(op)
}

// String returns the scopes as a space-separated string, as they were
// given, the ones this package ignores included.
func (sc Scopes) String() string { return strings.Join(sc.raw, " ") }

// Clinical reports whether at least one scope is a clinical scope this
// package understands (so that the token grants something).
func (sc Scopes) Clinical() bool { return len(sc.grants) > 0 }

// Has reports whether the exact scope s is present (e.g. "openid",
// "launch", "fhirUser").
func (sc Scopes) Has(s string) bool {
	for _, r := range sc.raw {
		if r == s {
			return true
		}
	}
	return false
}

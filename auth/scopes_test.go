package auth

import "testing"

func TestScopesAllowEachInteraction(t *testing.T) {
	all := []Interaction{OpCreate, OpRead, OpUpdate, OpDelete, OpSearch}
	tests := []struct {
		name, scope, resource string
		want                  string // the interactions allowed, in cruds order
	}{
		{"v2 patient wildcard read search", "patient/*.rs", "Observation", "rs"},
		{"v2 user one type", "user/Observation.rs", "Observation", "rs"},
		{"v2 user one type does not cover another", "user/Observation.rs", "Condition", ""},
		{"v2 system create update", "system/*.cu", "DocumentReference", "cu"},
		{"v2 all", "user/*.cruds", "Patient", "cruds"},
		{"v2 single letter", "system/Binary.c", "Binary", "c"},
		{"v2 delete only", "user/DocumentReference.d", "DocumentReference", "d"},
		{"v1 read is rs", "patient/Observation.read", "Observation", "rs"},
		{"v1 write is cud", "user/*.write", "Immunization", "cud"},
		{"v1 star star is cruds", "user/*.*", "Condition", "cruds"},
		{"v1 type star is cruds", "patient/Observation.*", "Observation", "cruds"},
		{"union of scopes", "patient/Observation.r user/Observation.s system/*.c", "Observation", "crs"},
		{"context system counts for anyone", "system/Patient.r", "Patient", "r"},
		{"v2 out of order is ignored", "user/*.sr", "Observation", ""},
		{"v2 repeated letter is ignored", "user/*.rr", "Observation", ""},
		{"v2 unknown letter is ignored", "user/*.rx", "Observation", ""},
		{"empty permissions ignored", "user/*.", "Observation", ""},
		{"query-restricted v2 scope grants nothing", "patient/Observation.rs?category=laboratory", "Observation", ""},
		{"unknown context ignored", "admin/*.cruds", "Observation", ""},
		{"lower-case type ignored", "user/observation.rs", "observation", ""},
		{"no dot ignored", "user/Observation", "Observation", ""},
		{"openid fhirUser launch grant nothing", "openid fhirUser launch offline_access", "Patient", ""},
		{"psc scope_all grants nothing", "openid scope_all", "Patient", ""},
		{"empty", "", "Patient", ""},
		{"extra spaces", "  user/Observation.r   user/Observation.s ", "Observation", "rs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := ParseScopes(tt.scope)
			got := ""
			for _, op := range all {
				if sc.Allows(tt.resource, op) {
					got += string(op)
				}
			}
			if got != tt.want {
				t.Errorf("ParseScopes(%q) allows %q on %s, want %q", tt.scope, got, tt.resource, tt.want)
			}
		})
	}
}

func TestScopesRejectUnknownInteraction(t *testing.T) {
	sc := ParseScopes("user/*.cruds")
	for _, op := range []Interaction{"", "x", "rs", "read"} {
		if sc.Allows("Patient", op) {
			t.Errorf("Allows(Patient, %q) = true", op)
		}
	}
}

func TestScopesMissingNamesTheScopeToAsk(t *testing.T) {
	tests := []struct {
		name, scope, resource string
		op                    Interaction
		want                  string
	}{
		{"allowed gives empty", "user/*.rs", "Observation", OpRead, ""},
		{"no scope at all says user", "", "Observation", OpRead, "user/Observation.r"},
		{"only openid says user", "openid fhirUser", "Observation", OpSearch, "user/Observation.s"},
		{"context of the first clinical scope", "patient/Condition.rs", "Observation", OpRead, "patient/Observation.r"},
		{"system context", "system/*.rs", "DocumentReference", OpCreate, "system/DocumentReference.c"},
		{"v1 write does not give read", "user/Observation.write", "Observation", OpRead, "user/Observation.r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseScopes(tt.scope).Missing(tt.resource, tt.op); got != tt.want {
				t.Errorf("Missing = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCallerMissingScopeUsesItsKind(t *testing.T) {
	for kind, want := range map[Kind]string{
		KindPractitioner: "user/Observation.u",
		KindPatient:      "patient/Observation.u",
		KindSystem:       "system/Observation.u",
	} {
		c := &Caller{Kind: kind, Scopes: ParseScopes("system/*.rs")}
		if got := c.MissingScope("Observation", OpUpdate); got != want {
			t.Errorf("%s: MissingScope = %q, want %q", kind, got, want)
		}
		if got := c.MissingScope("Observation", OpRead); got != "" {
			t.Errorf("%s: MissingScope of an allowed read = %q", kind, got)
		}
	}
}

func TestScopesStringKeepsUnknownScopes(t *testing.T) {
	sc := ParseScopes(" openid  fhirUser launch/patient patient/*.rs bogus ")
	if got, want := sc.String(), "openid fhirUser launch/patient patient/*.rs bogus"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if !sc.Has("fhirUser") || sc.Has("user/*.rs") {
		t.Errorf("Has is wrong")
	}
	if !sc.Clinical() || ParseScopes("openid launch").Clinical() {
		t.Errorf("Clinical is wrong")
	}
	var zero Scopes
	if zero.Allows("Patient", OpRead) || zero.String() != "" {
		t.Errorf("the zero Scopes grants something")
	}
}

func TestInteractionString(t *testing.T) {
	for op, want := range map[Interaction]string{OpCreate: "create", OpRead: "read", OpUpdate: "update", OpDelete: "delete", OpSearch: "search"} {
		if op.String() != want {
			t.Errorf("%q.String() = %q, want %q", string(op), op.String(), want)
		}
	}
}

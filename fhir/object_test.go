package fhir

import "testing"

// MarshalJSON writes plain keys as they are and escapes the others as
// encoding/json does.
func TestObjectMarshalJSONEscapesKeys(t *testing.T) {
	obj := Object{{Key: "status", Value: []byte(`"final"`)}, {Key: `we"ird<&>é`, Value: []byte(`1`)}}
	got, _ := obj.MarshalJSON()
	if want := `{"status":"final","we\"ird\u003c\u0026\u003eé":1}`; string(got) != want {
		t.Fatalf("%s, want %s", got, want)
	}
	back, err := ParseObject(got)
	if err != nil || back[1].Key != `we"ird<&>é` {
		t.Fatalf("round trip: %v %v", back, err)
	}
}

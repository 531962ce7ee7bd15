package store

import (
	"context"
	"reflect"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// TestPrepareTakesTheIndexGivenForExactlyItsBody: index values extracted
// ahead (WithIndex) serve the write of that very body; any other body gets
// its own.
func TestPrepareTakesTheIndexGivenForExactlyItsBody(t *testing.T) {
	body := []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`)
	other := []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`)
	ahead := fhir.Index{Tokens: []fhir.Token{{Param: "marker", Code: "ahead"}}}
	ctx := WithIndex(context.Background(), body, ahead)
	nv, err := Prepare(ctx, "Observation", "o1", body, 1, Now())
	if err != nil || !reflect.DeepEqual(nv.Index, ahead) {
		t.Fatalf("the body given ahead: %+v %v", nv.Index, err)
	}
	nv, err = Prepare(ctx, "Observation", "o1", other, 1, Now())
	if err != nil || !reflect.DeepEqual(nv.Index, fhir.ExtractIndex(nv.Body)) {
		t.Fatalf("another body: %+v %v", nv.Index, err)
	}
}

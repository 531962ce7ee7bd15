package store

import "context"

// Query is an engine-neutral search: resources of one type that meet every
// clause, sorted and paged. The api layer builds it from FHIR search
// parameters (with fhir's definitions); auth adds the clauses that express
// what the caller may see; each engine translates it to one query that uses
// its indexes, so totals and pages are right and nothing is fetched then
// dropped.
type Query struct {
	Type  string
	Where []Clause // all must hold (AND)
	// Sort keys in order; engines always end with the resource id ascending
	// as the final tie-breaker, so that the order is total and stable.
	Sort []Sort
	// Count is the page size; 0 asks for no resources (a count only).
	Count int
	// After continues from the page that ended with this cursor (Page.Next).
	After string
	// Total asks for the number of all matches (Page.Total), not just this page.
	Total bool
}

// Clause is an OR of conditions: the comma-separated values of one
// parameter, or the compartment parameters of a type.
type Clause struct {
	Any []Condition
}

// Kind is the kind of index a condition reads.
type Kind int

const (
	KindToken Kind = iota + 1
	KindString
	KindReference
	KindDate
	KindNumber // number and quantity
	KindURI
	KindID          // the resource's logical id (_id)
	KindLastUpdated // meta.lastUpdated (_lastUpdated)
)

// StringMatch is how a string condition compares.
type StringMatch int

const (
	StringPrefix   StringMatch = iota // default FHIR string search: Norm starts with Value
	StringExact                       // :exact: Exact equals Value
	StringContains                    // :contains: Norm contains Value
)

// Condition is one test on one search parameter's indexed values. Exactly
// one of the value fields matters, according to Kind; Missing, Chain and
// Has are the exceptions that replace the value test.
type Condition struct {
	Param string
	Kind  Kind
	// Not negates the whole condition: resources with no value meeting the
	// test (including resources with no value at all). Used for token :not
	// and the ne prefix.
	Not bool

	// Missing, when set, replaces the value test: true matches resources
	// with no value for Param, false resources with at least one.
	Missing *bool

	// KindToken: System and Code; System "" with AnySystem matches any
	// system, with !AnySystem only values without a system (FHIR |code).
	// Code "" matches any code of System (FHIR system|).
	System    string
	Code      string
	AnySystem bool

	// KindString and KindURI: Value, compared per Match (URI: exact, or
	// StringPrefix for :below). For KindString the api has already folded
	// Value like fhir.String.Norm, except for StringExact.
	Value string
	Match StringMatch

	// KindReference: Type and ID of a local reference (Type "" matches any
	// type), or URL for any other reference.
	RefType string
	RefID   string
	URL     string

	// KindDate, KindNumber, KindLastUpdated: constraints on the stored
	// range [Low, High] (dates in Unix ms; a number is the range [v, v]).
	Range Interval
	// KindNumber on a quantity: System and Code of the unit when given
	// (System "" = any system; Code "" = any unit).

	// KindID: Value is the id.

	// Chain, for KindReference: the referenced resource must be of
	// Chain.Type and meet Chain.Where (FHIR chaining, one level:
	// subject:Patient.identifier=...). Chain's Sort, Count, After, Total are
	// ignored.
	Chain *Query

	// Has (any Kind; Param ignored): some resource of Has.Type whose
	// reference parameter Has.Param points to the candidate meets
	// Has.Where (FHIR _has, one level).
	Has *HasQuery
}

// HasQuery is the reverse-chain test of _has:Type:param:...
type HasQuery struct {
	Type  string
	Param string
	Where []Clause
}

// Interval constrains a stored range [Low, High]; every non-nil bound must
// hold, all inclusive. The api turns FHIR prefixes into these bounds: with
// the search range [a, b], eq is Low>=a & High<=b, gt High>b (HighAtLeast
// b+1 for dates), ge High>=a, lt Low<a, le Low<=b, sa Low>b, eb High<a, and
// ne is eq with Not.
type Interval struct {
	LowAtLeast, LowAtMost   *float64
	HighAtLeast, HighAtMost *float64
}

// Sort is one sort key. For a parameter with several values, ascending
// uses the smallest (a date's Low), descending the largest (a date's High).
// Resources without a value come last in either direction.
type Sort struct {
	Param string
	Kind  Kind // KindDate, KindString, KindToken (code), KindNumber, KindURI, KindID, KindLastUpdated
	Desc  bool
}

// Page is one page of a search.
type Page struct {
	Resources []*Resource
	// Next continues the search after this page (Query.After); "" on the
	// last page. Opaque: engines encode their own keyset position.
	Next string
	// Total is the number of all matches when Query.Total asked for it,
	// else -1.
	Total int
}

// Searcher runs queries. Engines implement it beside Store.
type Searcher interface {
	// Search runs q against current, non-deleted resources. An After that
	// the engine cannot decode gives ErrBadCursor.
	Search(ctx context.Context, q Query) (*Page, error)
	// Reindex extracts the index values of every current resource again
	// (after the search definitions changed), calling progress now and then
	// with the number done.
	Reindex(ctx context.Context, progress func(done int)) error
}

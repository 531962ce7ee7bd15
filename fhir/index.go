package fhir

// Index holds the search values extracted from a resource when it is
// written. The store keeps them beside the resource, so that a search never
// reads resource bodies or raw resource paths. Each value carries the name
// of its search parameter (e.g. "code", "patient", "date", "_tag").
//
// ExtractIndex (extract.go) fills it from the official SearchParameter
// definitions of the resource's type.
type Index struct {
	Tokens     []Token
	Strings    []String
	References []Reference
	Dates      []Date
	Numbers    []Number // number and quantity parameters
	URIs       []URI
}

// Token is a coded value: system|code (Coding, Identifier, ContactPoint,
// code, boolean as "true"/"false", ...). System is "" when the element has
// none.
type Token struct {
	Param  string
	System string
	Code   string
}

// String is a string value. Norm is the value folded for the default and
// :contains matches: lower case, accents removed, runs of white space made
// one space, trimmed (so "Hélène " matches "helene"); Exact is the value as
// written, for :exact. Token parameters' :text values are Strings under the
// name "<param>:text" (CodeableConcept.text and Coding.display).
type String struct {
	Param string
	Norm  string
	Exact string
}

// Reference is a reference value. A relative reference "Patient/123" (or
// "Patient/123/_history/2") gives Type "Patient" and ID "123". An absolute
// URL ending in Type/id gives Type and ID and, as the server's own base is
// not known when values are extracted, the URL too, so that a search by
// either form finds it. Any other URL, urn:uuid, "#contained" or canonical
// is kept whole in URL with Type and ID empty.
type Reference struct {
	Param string
	Type  string
	ID    string
	URL   string
}

// Date is a date, dateTime, instant or Period as the closed range of
// instants it covers, in Unix milliseconds: "2024" covers
// [2024-01-01T00:00:00.000, 2024-12-31T23:59:59.999] (in UTC when the value
// has no zone); an open Period end is MaxDate, an open start MinDate.
type Date struct {
	Param string
	Low   int64
	High  int64
}

// Number is a number or quantity value. Quantities keep their system and
// code (e.g. http://unitsofmeasure.org and mg) and unit text.
type Number struct {
	Param  string
	Value  float64
	System string
	Code   string
	Unit   string
}

// URI is a uri, url or canonical value.
type URI struct {
	Param string
	Value string
}

// Bounds of an open date range, in Unix milliseconds.
const (
	MinDate int64 = -62135596800000 // 0001-01-01T00:00:00Z
	MaxDate int64 = 253402300799999 // 9999-12-31T23:59:59.999Z
)

// Package fhir knows the FHIR R4 format: the resource registry, validation,
// resource JSON handling and the OperationOutcome/Bundle builders. It knows
// nothing of storage, HTTP or who is asking.
package fhir

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Issue is one entry of an OperationOutcome.
type Issue struct {
	Severity    string // fatal | error | warning | information
	Code        string // an IssueType code: invalid, structure, required, value, not-found, ...
	Expression  string // FHIRPath location of the problem, e.g. "AllergyIntolerance.recordedDate"
	Diagnostics string // a message for a human
}

// Error is a failure that carries its FHIR meaning from where it starts: the
// HTTP status it maps to and the OperationOutcome issues that explain it.
type Error struct {
	Status int
	Issues []Issue
}

func (e *Error) Error() string {
	parts := make([]string, 0, len(e.Issues))
	for _, is := range e.Issues {
		if is.Expression != "" {
			parts = append(parts, is.Expression+": "+is.Diagnostics)
		} else {
			parts = append(parts, is.Diagnostics)
		}
	}
	return fmt.Sprintf("%d %s", e.Status, strings.Join(parts, "; "))
}

// NewError builds an Error with one issue of severity error.
func NewError(status int, code, expression, message string) *Error {
	return &Error{Status: status, Issues: []Issue{{Severity: "error", Code: code, Expression: expression, Diagnostics: message}}}
}

// Invalid reports a structural problem with the content sent (400).
func Invalid(expression, message string) *Error {
	return NewError(http.StatusBadRequest, "structure", expression, message)
}

// Unprocessable reports content that is well formed but breaks a rule (422).
func Unprocessable(expression, message string) *Error {
	return NewError(http.StatusUnprocessableEntity, "business-rule", expression, message)
}

// NotFound reports an unknown resource, type or route (404).
func NotFound(message string) *Error {
	return NewError(http.StatusNotFound, "not-found", "", message)
}

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var fe *Error
	if errors.As(err, &fe) {
		return fe, true
	}
	return nil, false
}

// OperationOutcome renders issues as an OperationOutcome resource. An empty
// list gives the conventional "All OK" information issue.
func OperationOutcome(issues ...Issue) []byte {
	out := models.OperationOutcome{}
	for _, is := range issues {
		var oi models.OperationOutcomeIssue
		if oi.Severity.UnmarshalJSON([]byte(is.Severity)) != nil {
			oi.Severity = models.IssueSeverityError
		}
		if oi.Code.UnmarshalJSON([]byte(is.Code)) != nil {
			oi.Code = models.IssueTypeProcessing
		}
		if is.Diagnostics != "" {
			d := is.Diagnostics
			oi.Diagnostics = &d
		}
		if is.Expression != "" {
			oi.Expression = []string{is.Expression}
		}
		out.Issue = append(out.Issue, oi)
	}
	if len(out.Issue) == 0 {
		ok := "All OK"
		out.Issue = []models.OperationOutcomeIssue{{Severity: models.IssueSeverityInformation, Code: models.IssueTypeInformational, Diagnostics: &ok}}
	}
	b, err := Marshal(out)
	if err != nil {
		panic(err) // a fixed struct of strings always marshals
	}
	return b
}

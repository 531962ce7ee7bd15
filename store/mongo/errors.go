package mongo

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// storeError is a store sentinel (errors.Is matches it) that keeps the driver
// error behind it as its single Unwrap chain, so that the driver still sees
// the labels of that error (TransientTransactionError makes WithTransaction
// run the transaction again).
type storeError struct {
	kind  error // a store.Err* sentinel
	msg   string
	cause error // the driver error, or nil
}

func (e *storeError) Error() string {
	s := e.kind.Error()
	if e.msg != "" {
		s += ": " + e.msg
	}
	if e.cause != nil {
		s += " (" + e.cause.Error() + ")"
	}
	return s
}

func (e *storeError) Is(target error) bool { return target == e.kind }
func (e *storeError) Unwrap() error        { return e.cause }

func storeErr(kind error, cause error, format string, args ...any) error {
	return &storeError{kind: kind, msg: fmt.Sprintf(format, args...), cause: cause}
}

// Server error codes the engine reacts to.
const (
	codeWriteConflict = 112
	codeNoSuchTx      = 251
)

// isConflict reports a write that lost to a concurrent one in a way the
// caller may retry: a transaction's write conflict, or anything the server
// labels a transient transaction error.
func isConflict(err error) bool {
	var se mongo.ServerError
	if errors.As(err, &se) {
		return se.HasErrorCode(codeWriteConflict) || se.HasErrorCode(codeNoSuchTx) ||
			se.HasErrorLabel("TransientTransactionError")
	}
	return false
}

// wrap turns a driver error met during op into the store's vocabulary:
// conflicts become ErrConflict, anything else an engine error naming op.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *storeError
	if errors.As(err, &se) {
		return err
	}
	if isConflict(err) {
		return storeErr(store.ErrConflict, err, "mongodb %s", op)
	}
	return fmt.Errorf("mongodb %s: %w", op, err)
}

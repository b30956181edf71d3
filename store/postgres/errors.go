package postgres

import (
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runstep/runstep/store"
)

// The SQLSTATE codes the store acts on (PostgreSQL's Appendix A). Errors
// are told apart by these codes, never by their text.
const (
	codeUniqueViolation          = "23505"
	codeDivisionByZero           = "22012"
	codeSerializationFailure     = "40001"
	codeDeadlock                 = "40P01"
	codeUndefinedTable           = "42P01"
	codeInvalidSchemaName        = "3F000"
	codeDuplicateSchema          = "42P06"
	codeDuplicateTable           = "42P07"
	codeDuplicateObject          = "42710"
	codeUndefinedObject          = "42704"
	codeCharacterNotInRepertoire = "22021"
	codeUntranslatableCharacter  = "22P05"
	codeAdminShutdown            = "57P01"
	codeCrashShutdown            = "57P02"
	codeCannotConnectNow         = "57P03"
)

// hasCode reports whether err carries a PostgreSQL error with one of
// codes.
func hasCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && slices.Contains(codes, pgErr.Code)
}

// retryable reports whether err is a transaction the database gave up on
// so that another could go on: trying again may succeed.
func retryable(err error) bool {
	return hasCode(err, codeSerializationFailure, codeDeadlock)
}

// mapErr turns the driver's errors into the store's sentinels where one
// fits, keeping the driver's error in the chain: a transaction the
// database aborted for a concurrent one is a conflict, and text it cannot
// hold is invalid. Other errors pass unchanged.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case retryable(err):
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	case hasCode(err, codeCharacterNotInRepertoire, codeUntranslatableCharacter):
		return fmt.Errorf("%w: %w", store.ErrInvalid, err)
	case hasCode(err, codeUndefinedTable, codeInvalidSchemaName):
		return fmt.Errorf("the store's schema is gone (dropped while in use?): %w", err)
	case hasCode(err, codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow):
		return fmt.Errorf("the database server ended the connection: %w", err)
	}
	return err
}

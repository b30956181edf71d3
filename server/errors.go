package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/runstep/runstep/engine"
)

const contentTypeJSON = "application/json"

// The error types OpenAI's API gives.
const (
	typeInvalidRequest = "invalid_request_error"
	typeServer         = "server_error"
)

// apiError is the body of OpenAI's error responses, inside
// {"error": …}. Param and Code are null unless set.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func encodeError(e apiError) ([]byte, error) {
	return json.Marshal(struct {
		Error apiError `json:"error"`
	}{e})
}

// writeError answers with e and status.
func writeError(w http.ResponseWriter, status int, e apiError) {
	body, err := encodeError(e)
	if err != nil {
		// Only strings go in: this cannot happen, and if it did the status
		// still says what went wrong.
		body = nil
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// notFound answers that no object of the kind has the id, as OpenAI says
// it: a run or step of another thread or run is not found either.
func notFound(w http.ResponseWriter, kind, id string) {
	writeError(w, http.StatusNotFound, apiError{
		Message: fmt.Sprintf("No %s found with id '%s'.", kind, id),
		Type:    typeInvalidRequest,
	})
}

// badRequest answers that a parameter is wrong.
func badRequest(w http.ResponseWriter, ae *engine.ArgumentError) {
	msg := fmt.Sprintf("Invalid '%s': %s.", ae.Param, ae.Reason)
	if ae.Value != "" {
		msg = fmt.Sprintf("Invalid '%s' %q: %s.", ae.Param, ae.Value, ae.Reason)
	}
	param := ae.Param
	writeError(w, http.StatusBadRequest, apiError{Message: msg, Type: typeInvalidRequest, Param: &param})
}

// fail answers an error no more specific answer was found for: a bad
// argument is a 400, anything else a 500 whose cause is logged, not shown.
// A request whose client has gone, or whose time ran out, gets nothing more:
// there is no one to answer, or http.TimeoutHandler has answered.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *engine.ArgumentError
	switch {
	case errors.As(err, &ae):
		badRequest(w, ae)
	case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
	default:
		s.logger.ErrorContext(r.Context(), "runstep server: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, apiError{
			Message: "The server had an error while processing your request.",
			Type:    typeServer,
		})
	}
}

package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// getRun serves GET /v1/threads/{thread_id}/runs/{run_id}.
func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	run, ok := s.threadRun(w, r)
	if !ok {
		return
	}
	s.writeJSON(w, r, run)
}

// threadRun reads the run the path names. If there is none in the path's
// thread, or it cannot be read, it answers the request and returns false.
func (s *Server) threadRun(w http.ResponseWriter, r *http.Request) (lifecycle.Run, bool) {
	runID := r.PathValue("run_id")
	run, err := s.eng.GetRun(r.Context(), runID)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && run.ThreadID != r.PathValue("thread_id"):
		notFound(w, "run", runID)
		return lifecycle.Run{}, false
	case err != nil:
		s.fail(w, r, err)
		return lifecycle.Run{}, false
	}
	return run, true
}

// listSteps serves GET /v1/threads/{thread_id}/runs/{run_id}/steps with
// the API's limit, order, after and before. include[] is accepted and
// ignored: runstep keeps no file search results to include.
func (s *Server) listSteps(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := engine.ListParams{
		RunID:  r.PathValue("run_id"),
		Order:  engine.Order(q.Get("order")),
		After:  q.Get("after"),
		Before: q.Get("before"),
	}
	if v := q.Get("limit"); v != "" {
		// The engine reads 0 as "the default"; the API refuses it.
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 {
			badRequest(w, &engine.ArgumentError{Param: "limit", Value: v, Reason: "must be an integer between 1 and 100"})
			return
		}
		p.Limit = n
	}
	if _, ok := s.threadRun(w, r); !ok {
		return
	}
	list, err := s.eng.ListSteps(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list.Data == nil {
		list.Data = []lifecycle.Step{} // the API's empty list is [], not null
	}
	s.writeJSON(w, r, list)
}

// getStep serves GET /v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}.
// include[] is accepted and ignored, as for the list.
func (s *Server) getStep(w http.ResponseWriter, r *http.Request) {
	stepID := r.PathValue("step_id")
	step, err := s.eng.GetStep(r.Context(), stepID)
	switch {
	case errors.Is(err, store.ErrNotFound) ||
		err == nil && (step.RunID != r.PathValue("run_id") || step.ThreadID != r.PathValue("thread_id")):
		notFound(w, "run step", stepID)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, r, step)
}

// writeJSON answers with v as JSON, encoded whole before anything is sent
// so that an encoding error can still be a 500.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

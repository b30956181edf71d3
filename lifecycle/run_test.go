package lifecycle_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/looplab/fsm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
)

// runDeadline is the expires_at of the runs the tests build: the default
// ten minutes after they were created.
const runDeadline = createdAt + int64(lifecycle.DefaultRunTTL/time.Second)

// runTriggerUnknown is a trigger the run machine does not define.
const runTriggerUnknown lifecycle.RunTrigger = "pause"

// queuedRun returns a valid run as it is created: queued, never started,
// with its deadline.
func queuedRun() lifecycle.Run {
	return lifecycle.Run{
		ID:          "run_1",
		CreatedAt:   createdAt,
		ThreadID:    "thread_1",
		AssistantID: "asst_1",
		Status:      lifecycle.RunStatusQueued,
		ExpiresAt:   ptr(runDeadline),
	}
}

// runIn returns a valid run in status with the stamps it carries there: a
// run past the queue started a second after it was created, and a run that
// ended did so a second later. Only an expired run keeps its deadline once
// it has ended.
func runIn(status lifecycle.RunStatus) lifecycle.Run {
	r := queuedRun()
	r.Status = status
	if status == lifecycle.RunStatusQueued {
		return r
	}
	r.StartedAt = ptr(createdAt + 1)
	ended := ptr(createdAt + 2)
	switch status {
	case lifecycle.RunStatusCompleted, lifecycle.RunStatusIncomplete:
		r.CompletedAt = ended
	case lifecycle.RunStatusFailed:
		r.FailedAt = ended
		r.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "boom"}
	case lifecycle.RunStatusCancelled:
		r.CancelledAt = ended
	}
	if status.Terminal() && status != lifecycle.RunStatusExpired {
		r.ExpiresAt = nil
	}
	return r
}

// TestRunTransitionMatrix drives every run status × every run trigger
// through Run.Apply, NextRunStatus and a real looplab FSM built from the
// definition, and checks that the three agree with the table written here.
func TestRunTransitionMatrix(t *testing.T) {
	const refused = lifecycle.RunStatus("")
	var (
		queued         = lifecycle.RunStatusQueued
		inProgress     = lifecycle.RunStatusInProgress
		requiresAction = lifecycle.RunStatusRequiresAction
		cancelling     = lifecycle.RunStatusCancelling
		cancelled      = lifecycle.RunStatusCancelled
		failed         = lifecycle.RunStatusFailed
		completed      = lifecycle.RunStatusCompleted
		incomplete     = lifecycle.RunStatusIncomplete
		expired        = lifecycle.RunStatusExpired
	)
	tests := []struct {
		from    lifecycle.RunStatus
		trigger lifecycle.RunTrigger
		want    lifecycle.RunStatus // refused: Apply and looplab refuse
	}{
		{queued, lifecycle.RunTriggerStart, inProgress},
		{queued, lifecycle.RunTriggerRequireAction, refused},
		{queued, lifecycle.RunTriggerSubmitToolOutputs, refused},
		{queued, lifecycle.RunTriggerResume, refused},
		{queued, lifecycle.RunTriggerComplete, refused},
		{queued, lifecycle.RunTriggerIncomplete, refused},
		{queued, lifecycle.RunTriggerFail, failed},
		{queued, lifecycle.RunTriggerCancel, cancelling},
		{queued, lifecycle.RunTriggerFinishCancel, refused},
		{queued, lifecycle.RunTriggerExpire, expired},
		{queued, runTriggerUnknown, refused},

		{inProgress, lifecycle.RunTriggerStart, refused},
		{inProgress, lifecycle.RunTriggerRequireAction, requiresAction},
		{inProgress, lifecycle.RunTriggerSubmitToolOutputs, refused},
		{inProgress, lifecycle.RunTriggerResume, refused},
		{inProgress, lifecycle.RunTriggerComplete, completed},
		{inProgress, lifecycle.RunTriggerIncomplete, incomplete},
		{inProgress, lifecycle.RunTriggerFail, failed},
		{inProgress, lifecycle.RunTriggerCancel, cancelling},
		{inProgress, lifecycle.RunTriggerFinishCancel, refused},
		{inProgress, lifecycle.RunTriggerExpire, expired},
		{inProgress, runTriggerUnknown, refused},

		{requiresAction, lifecycle.RunTriggerStart, refused},
		{requiresAction, lifecycle.RunTriggerRequireAction, refused},
		{requiresAction, lifecycle.RunTriggerSubmitToolOutputs, queued},
		{requiresAction, lifecycle.RunTriggerResume, inProgress},
		{requiresAction, lifecycle.RunTriggerComplete, refused},
		{requiresAction, lifecycle.RunTriggerIncomplete, refused},
		{requiresAction, lifecycle.RunTriggerFail, failed},
		{requiresAction, lifecycle.RunTriggerCancel, cancelling},
		{requiresAction, lifecycle.RunTriggerFinishCancel, refused},
		{requiresAction, lifecycle.RunTriggerExpire, expired},
		{requiresAction, runTriggerUnknown, refused},

		// A cancel loses to the outcome it raced: complete, fail or expire.
		{cancelling, lifecycle.RunTriggerStart, refused},
		{cancelling, lifecycle.RunTriggerRequireAction, refused},
		{cancelling, lifecycle.RunTriggerSubmitToolOutputs, refused},
		{cancelling, lifecycle.RunTriggerResume, refused},
		{cancelling, lifecycle.RunTriggerComplete, completed},
		{cancelling, lifecycle.RunTriggerIncomplete, refused},
		{cancelling, lifecycle.RunTriggerFail, failed},
		{cancelling, lifecycle.RunTriggerCancel, refused},
		{cancelling, lifecycle.RunTriggerFinishCancel, cancelled},
		{cancelling, lifecycle.RunTriggerExpire, expired},
		{cancelling, runTriggerUnknown, refused},

		{cancelled, lifecycle.RunTriggerStart, refused},
		{cancelled, lifecycle.RunTriggerRequireAction, refused},
		{cancelled, lifecycle.RunTriggerSubmitToolOutputs, refused},
		{cancelled, lifecycle.RunTriggerResume, refused},
		{cancelled, lifecycle.RunTriggerComplete, refused},
		{cancelled, lifecycle.RunTriggerIncomplete, refused},
		{cancelled, lifecycle.RunTriggerFail, refused},
		{cancelled, lifecycle.RunTriggerCancel, refused},
		{cancelled, lifecycle.RunTriggerFinishCancel, refused},
		{cancelled, lifecycle.RunTriggerExpire, refused},
		{cancelled, runTriggerUnknown, refused},

		{failed, lifecycle.RunTriggerStart, refused},
		{failed, lifecycle.RunTriggerRequireAction, refused},
		{failed, lifecycle.RunTriggerSubmitToolOutputs, refused},
		{failed, lifecycle.RunTriggerResume, refused},
		{failed, lifecycle.RunTriggerComplete, refused},
		{failed, lifecycle.RunTriggerIncomplete, refused},
		{failed, lifecycle.RunTriggerFail, refused},
		{failed, lifecycle.RunTriggerCancel, refused},
		{failed, lifecycle.RunTriggerFinishCancel, refused},
		{failed, lifecycle.RunTriggerExpire, refused},
		{failed, runTriggerUnknown, refused},

		{completed, lifecycle.RunTriggerStart, refused},
		{completed, lifecycle.RunTriggerRequireAction, refused},
		{completed, lifecycle.RunTriggerSubmitToolOutputs, refused},
		{completed, lifecycle.RunTriggerResume, refused},
		{completed, lifecycle.RunTriggerComplete, refused},
		{completed, lifecycle.RunTriggerIncomplete, refused},
		{completed, lifecycle.RunTriggerFail, refused},
		{completed, lifecycle.RunTriggerCancel, refused},
		{completed, lifecycle.RunTriggerFinishCancel, refused},
		{completed, lifecycle.RunTriggerExpire, refused},
		{completed, runTriggerUnknown, refused},

		{incomplete, lifecycle.RunTriggerStart, refused},
		{incomplete, lifecycle.RunTriggerRequireAction, refused},
		{incomplete, lifecycle.RunTriggerSubmitToolOutputs, refused},
		{incomplete, lifecycle.RunTriggerResume, refused},
		{incomplete, lifecycle.RunTriggerComplete, refused},
		{incomplete, lifecycle.RunTriggerIncomplete, refused},
		{incomplete, lifecycle.RunTriggerFail, refused},
		{incomplete, lifecycle.RunTriggerCancel, refused},
		{incomplete, lifecycle.RunTriggerFinishCancel, refused},
		{incomplete, lifecycle.RunTriggerExpire, refused},
		{incomplete, runTriggerUnknown, refused},

		{expired, lifecycle.RunTriggerStart, refused},
		{expired, lifecycle.RunTriggerRequireAction, refused},
		{expired, lifecycle.RunTriggerSubmitToolOutputs, refused},
		{expired, lifecycle.RunTriggerResume, refused},
		{expired, lifecycle.RunTriggerComplete, refused},
		{expired, lifecycle.RunTriggerIncomplete, refused},
		{expired, lifecycle.RunTriggerFail, refused},
		{expired, lifecycle.RunTriggerCancel, refused},
		{expired, lifecycle.RunTriggerFinishCancel, refused},
		{expired, lifecycle.RunTriggerExpire, refused},
		{expired, runTriggerUnknown, refused},
	}

	// The table must cover every pair, so a new status or trigger cannot
	// slip past it.
	covered := make(map[string]bool)
	for _, tt := range tests {
		covered[string(tt.from)+"/"+string(tt.trigger)] = true
	}
	triggers := append(slices.Clone(lifecycle.RunTriggers), runTriggerUnknown)
	for _, from := range lifecycle.RunStatuses {
		for _, trig := range triggers {
			require.True(t, covered[string(from)+"/"+string(trig)], "no row for %s × %s", from, trig)
		}
	}
	require.Len(t, tests, len(lifecycle.RunStatuses)*len(triggers))

	failure := lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "The server had an error"}

	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.from, tt.trigger), func(t *testing.T) {
			runs := []lifecycle.Run{runIn(tt.from)}
			if tt.from == queued {
				// Back in the queue after its tool outputs were submitted:
				// it has started once, and starting again stamps anew.
				requeued := runIn(queued)
				requeued.StartedAt = ptr(createdAt + 1)
				runs = append(runs, requeued)
			}
			for _, run := range runs {
				run.Metadata = lifecycle.Metadata{"k": "v"}
				before := run.Clone()
				change := lifecycle.RunChange{Trigger: tt.trigger, At: at}
				if tt.trigger == lifecycle.RunTriggerFail {
					change.Error = ptr(failure)
				}

				got, err := run.Apply(change)
				require.Equal(t, before, run, "Apply changed its receiver")

				if tt.want == refused {
					var te *lifecycle.TransitionError
					require.ErrorAs(t, err, &te)
					require.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
					assert.Equal(t, run.ID, te.ID)
					assert.Equal(t, string(tt.from), te.From)
					assert.Equal(t, string(tt.trigger), te.Trigger)
					assert.Zero(t, got)
					continue
				}

				require.NoError(t, err)
				want := before.Clone()
				want.Status = tt.want
				if tt.trigger == lifecycle.RunTriggerStart {
					want.StartedAt = ptr(doneAt)
				}
				switch tt.want {
				case completed, incomplete:
					want.CompletedAt = ptr(doneAt)
				case failed:
					want.FailedAt = ptr(doneAt)
					want.LastError = ptr(failure)
				case cancelled:
					want.CancelledAt = ptr(doneAt)
				}
				if tt.want.Terminal() && tt.want != expired {
					want.ExpiresAt = nil
				}
				if tt.want == expired {
					want.ExpiresAt = ptr(doneAt)
				}
				require.Equal(t, want, got)
				require.NoError(t, got.Validate())
				if tt.want == expired {
					require.Equal(t, ptr(doneAt), got.ExpiresAt, "an expired run's expires_at is when it expired")
				}
			}

			next, ok := lifecycle.NextRunStatus(tt.from, tt.trigger)
			machine := lifecycle.RunMachine(tt.from)
			fsmErr := machine.Event(t.Context(), string(tt.trigger))
			if tt.want == refused {
				assert.False(t, ok, "NextRunStatus allows what Apply refuses")
				require.Error(t, fsmErr, "looplab allows what Apply refuses")
				if tt.trigger == runTriggerUnknown {
					require.ErrorAs(t, fsmErr, new(fsm.UnknownEventError))
				} else {
					require.ErrorAs(t, fsmErr, new(fsm.InvalidEventError))
				}
				assert.Equal(t, string(tt.from), machine.Current())
				return
			}
			assert.True(t, ok)
			assert.Equal(t, tt.want, next, "NextRunStatus disagrees with Apply")
			require.NoError(t, fsmErr)
			assert.Equal(t, string(tt.want), machine.Current(), "looplab disagrees with Apply")
		})
	}
}

// TestRunMachineTableInDoc checks the run machine's table in the package
// doc against the machine, cell by cell.
func TestRunMachineTableInDoc(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	lines := strings.Split(string(b), "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "//\ttrigger ") })
	require.NotEqual(t, -1, i, "doc.go has no run machine table")

	var columns, leavable []lifecycle.RunStatus
	for _, f := range strings.Fields(lines[i])[2:] {
		columns = append(columns, lifecycle.RunStatus(f))
	}
	for _, s := range lifecycle.RunStatuses {
		if !s.Terminal() {
			leavable = append(leavable, s)
		}
	}
	require.Equal(t, leavable, columns, "the columns are the statuses a run can leave")

	var rows []lifecycle.RunTrigger
	for _, l := range lines[i+2:] {
		if !strings.HasPrefix(l, "//\t") {
			break
		}
		cells := strings.Fields(l)[1:]
		require.Len(t, cells, len(columns)+1, "doc.go: %q", l)
		trig := lifecycle.RunTrigger(cells[0])
		rows = append(rows, trig)
		for j, from := range columns {
			want := "-"
			if to, ok := lifecycle.NextRunStatus(from, trig); ok {
				want = string(to)
			}
			assert.Equal(t, want, cells[j+1], "doc.go says %s × %s", from, trig)
		}
	}
	require.Equal(t, lifecycle.RunTriggers, rows, "the rows are the run triggers")
}

func TestRunApplyRefusesBadInput(t *testing.T) {
	serverError := &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "The server had an error"}
	tests := []struct {
		name   string
		run    lifecycle.Run
		change lifecycle.RunChange
		field  string
	}{
		{
			name:   "fail without an error",
			run:    runIn(lifecycle.RunStatusInProgress),
			change: lifecycle.RunChange{Trigger: lifecycle.RunTriggerFail, At: at},
			field:  "last_error",
		},
		{
			name:   "fail from the queue without an error",
			run:    queuedRun(),
			change: lifecycle.RunChange{Trigger: lifecycle.RunTriggerFail, At: at},
			field:  "last_error",
		},
		{
			name:   "complete with an error",
			run:    runIn(lifecycle.RunStatusInProgress),
			change: lifecycle.RunChange{Trigger: lifecycle.RunTriggerComplete, At: at, Error: serverError},
			field:  "last_error",
		},
		{
			name:   "start with an error",
			run:    queuedRun(),
			change: lifecycle.RunChange{Trigger: lifecycle.RunTriggerStart, At: at, Error: serverError},
			field:  "last_error",
		},
		{
			name:   "finish a cancel with an error",
			run:    runIn(lifecycle.RunStatusCancelling),
			change: lifecycle.RunChange{Trigger: lifecycle.RunTriggerFinishCancel, At: at, Error: serverError},
			field:  "last_error",
		},
		{
			name:   "expire with an error",
			run:    runIn(lifecycle.RunStatusRequiresAction),
			change: lifecycle.RunChange{Trigger: lifecycle.RunTriggerExpire, At: at, Error: serverError},
			field:  "last_error",
		},
		{
			name: "unknown error code",
			run:  runIn(lifecycle.RunStatusInProgress),
			change: lifecycle.RunChange{Trigger: lifecycle.RunTriggerFail, At: at,
				Error: &lifecycle.LastError{Code: "timeout", Message: "too slow"}},
			field: "last_error.code",
		},
		{
			name: "empty error code",
			run:  runIn(lifecycle.RunStatusInProgress),
			change: lifecycle.RunChange{Trigger: lifecycle.RunTriggerFail, At: at,
				Error: &lifecycle.LastError{Message: "no code"}},
			field: "last_error.code",
		},
		{
			name: "empty error message",
			run:  runIn(lifecycle.RunStatusInProgress),
			change: lifecycle.RunChange{Trigger: lifecycle.RunTriggerFail, At: at,
				Error: &lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded}},
			field: "last_error.message",
		},
		{
			name: "invalid_prompt with an empty message",
			run:  runIn(lifecycle.RunStatusInProgress),
			change: lifecycle.RunChange{Trigger: lifecycle.RunTriggerFail, At: at,
				Error: &lifecycle.LastError{Code: lifecycle.ErrorCodeInvalidPrompt}},
			field: "last_error.message",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run.Metadata = lifecycle.Metadata{"k": "v"}
			before := tt.run.Clone()
			got, err := tt.run.Apply(tt.change)
			requireInvalid(t, err, tt.field)
			require.Zero(t, got)
			require.Equal(t, before, tt.run, "Apply changed its receiver")
		})
	}
}

// TestRunApplyFailCodes checks that a run fails with every code a step
// may carry and with invalid_prompt, which only a run may carry, and that
// the result keeps its own copy of the error.
func TestRunApplyFailCodes(t *testing.T) {
	for _, code := range []lifecycle.ErrorCode{
		lifecycle.ErrorCodeServerError, lifecycle.ErrorCodeRateLimitExceeded, lifecycle.ErrorCodeInvalidPrompt,
	} {
		t.Run(string(code), func(t *testing.T) {
			run := runIn(lifecycle.RunStatusInProgress)
			before := run.Clone()
			le := &lifecycle.LastError{Code: code, Message: "Your prompt was flagged"}

			got, err := run.Apply(lifecycle.RunChange{Trigger: lifecycle.RunTriggerFail, At: at, Error: le})
			require.NoError(t, err)
			require.Equal(t, before, run, "Apply changed its receiver")
			require.NoError(t, got.Validate())
			require.Equal(t, lifecycle.RunStatusFailed, got.Status)
			require.Equal(t, ptr(doneAt), got.FailedAt)
			require.Nil(t, got.ExpiresAt)

			le.Code = lifecycle.ErrorCodeServerError
			le.Message = "changed afterwards"
			require.Equal(t, &lifecycle.LastError{Code: code, Message: "Your prompt was flagged"}, got.LastError)
		})
	}

	// A step cannot carry invalid_prompt: the code is the run's alone.
	step := messageStep()
	_, err := step.Apply(lifecycle.Change{Trigger: lifecycle.TriggerFail, At: at,
		Error: &lifecycle.LastError{Code: lifecycle.ErrorCodeInvalidPrompt, Message: "flagged"}})
	requireInvalid(t, err, "last_error.code")
}

// TestRunApplyConcurrent lets goroutines share one run and the package's
// run machine; go test -race reports any write to shared memory.
func TestRunApplyConcurrent(t *testing.T) {
	run := runIn(lifecycle.RunStatusInProgress)
	run.Metadata = lifecycle.Metadata{"k": "v"}
	before := run.Clone()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, trig := range lifecycle.RunTriggers {
				c := lifecycle.RunChange{Trigger: trig, At: at}
				if trig == lifecycle.RunTriggerFail {
					c.Error = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "x"}
				}
				next, err := run.Apply(c)
				if _, ok := lifecycle.NextRunStatus(run.Status, trig); !ok {
					assert.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
					continue
				}
				assert.NoError(t, err)
				if next.Status.Terminal() {
					_, err = next.Apply(c)
					assert.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
				}
			}
			_, err := lifecycle.RunDiagram(lifecycle.DiagramDOT)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, before, run)
}

// TestRecordedRunReplays decodes every run object of a real OpenAI stream
// (shared/recordings/openai_streaming_tool_call.sse) and checks that
// Run.Apply, from the first, builds each of the others: started_at is
// stamped again when the run leaves the queue a second time, and
// expires_at is cleared when it completes.
func TestRecordedRunReplays(t *testing.T) {
	recorded := make([]lifecycle.Run, len(recordedRuns))
	for i, rec := range recordedRuns {
		require.NoError(t, json.Unmarshal([]byte(rec.data), &recorded[i]), rec.event)
		want := lifecycle.RunStatus(strings.TrimPrefix(rec.event, "thread.run."))
		if rec.event == "thread.run.created" {
			want = lifecycle.RunStatusQueued
		}
		require.Equal(t, want, recorded[i].Status, rec.event)
	}

	// The times are the recorded stamps; nothing records when a run comes
	// to require action or goes back to the queue.
	changes := []lifecycle.RunChange{
		{Trigger: lifecycle.RunTriggerStart, At: time.Unix(1761861532, 0)},
		{Trigger: lifecycle.RunTriggerRequireAction, At: time.Unix(1761861534, 0)},
		{Trigger: lifecycle.RunTriggerSubmitToolOutputs, At: time.Unix(1761861535, 0)},
		{Trigger: lifecycle.RunTriggerStart, At: time.Unix(1761861535, 0)},
		{Trigger: lifecycle.RunTriggerComplete, At: time.Unix(1761861536, 0)},
	}
	require.Len(t, changes, len(recorded)-1)
	run := recorded[0]
	for i, c := range changes {
		next, err := run.Apply(c)
		require.NoError(t, err, "%s from %s", c.Trigger, run.Status)
		require.Equal(t, recorded[i+1], next, "%s from %s", c.Trigger, run.Status)
		run = next
	}
}

func TestRunValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(r *lifecycle.Run)
		field string // "" when the run is valid
	}{
		{"valid queued", func(r *lifecycle.Run) {}, ""},
		{"valid queued again after a start", func(r *lifecycle.Run) { r.StartedAt = ptr(createdAt + 1) }, ""},
		{"valid without a deadline", func(r *lifecycle.Run) { r.ExpiresAt = nil }, ""},
		{"valid failed with invalid_prompt", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusFailed)
			r.LastError.Code = lifecycle.ErrorCodeInvalidPrompt
		}, ""},

		{"empty id", func(r *lifecycle.Run) { r.ID = "" }, "id"},
		{"empty thread_id", func(r *lifecycle.Run) { r.ThreadID = "" }, "thread_id"},
		{"empty assistant_id", func(r *lifecycle.Run) { r.AssistantID = "" }, "assistant_id"},
		{"unknown status", func(r *lifecycle.Run) { r.Status = "paused" }, "status"},
		{"empty status", func(r *lifecycle.Run) { r.Status = "" }, "status"},
		{"status in capitals", func(r *lifecycle.Run) { r.Status = "QUEUED" }, "status"},

		{"completed without completed_at", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusCompleted)
			r.CompletedAt = nil
		}, "completed_at"},
		{"incomplete without completed_at", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusIncomplete)
			r.CompletedAt = nil
		}, "completed_at"},
		{"failed without failed_at", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusFailed)
			r.FailedAt = nil
		}, "failed_at"},
		{"cancelled without cancelled_at", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusCancelled)
			r.CancelledAt = nil
		}, "cancelled_at"},
		{"cancelled_at on a cancelling run", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusCancelling)
			r.CancelledAt = ptr(doneAt)
		}, "cancelled_at"},
		{"completed_at on an in_progress run", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusInProgress)
			r.CompletedAt = ptr(doneAt)
		}, "completed_at"},
		{"failed_at on a completed run", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusCompleted)
			r.FailedAt = ptr(doneAt)
		}, "failed_at"},
		{"completed_at on a failed run", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusFailed)
			r.CompletedAt = ptr(doneAt)
		}, "completed_at"},
		{"completed_at on an expired run", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusExpired)
			r.CompletedAt = ptr(doneAt)
		}, "completed_at"},

		{"last_error on a queued run", func(r *lifecycle.Run) {
			r.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "x"}
		}, "last_error"},
		{"last_error on a completed run", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusCompleted)
			r.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "x"}
		}, "last_error"},
		{"last_error on an expired run", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusExpired)
			r.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeInvalidPrompt, Message: "x"}
		}, "last_error"},
		{"failed without last_error", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusFailed)
			r.LastError = nil
		}, "last_error"},
		{"failed with an unknown code", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusFailed)
			r.LastError.Code = "timeout"
		}, "last_error.code"},
		{"failed with an empty message", func(r *lifecycle.Run) {
			*r = runIn(lifecycle.RunStatusFailed)
			r.LastError.Message = ""
		}, "last_error.message"},

		{"16 metadata pairs", func(r *lifecycle.Run) { r.Metadata = metadata(16, 8, 8, "a") }, ""},
		{"17 metadata pairs", func(r *lifecycle.Run) { r.Metadata = metadata(17, 8, 8, "a") }, "metadata"},
		{"64-character key", func(r *lifecycle.Run) { r.Metadata = metadata(1, 64, 1, "k") }, ""},
		{"65-character key", func(r *lifecycle.Run) { r.Metadata = metadata(1, 65, 1, "k") }, "metadata"},
		{"512-character value", func(r *lifecycle.Run) {
			r.Metadata = lifecycle.Metadata{"k": strings.Repeat("v", 512)}
		}, ""},
		{"513-character value", func(r *lifecycle.Run) {
			r.Metadata = lifecycle.Metadata{"k": strings.Repeat("v", 513)}
		}, "metadata.k"},
		{"512-rune multibyte value", func(r *lifecycle.Run) {
			r.Metadata = lifecycle.Metadata{"k": strings.Repeat("é", 512)}
		}, ""},
	}
	for _, status := range lifecycle.RunStatuses {
		tests = append(tests, struct {
			name  string
			edit  func(r *lifecycle.Run)
			field string
		}{"valid " + string(status), func(r *lifecycle.Run) { *r = runIn(status) }, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := queuedRun()
			tt.edit(&r)
			err := r.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			requireInvalid(t, err, tt.field)
		})
	}
}

func TestRunStatus(t *testing.T) {
	terminal := []lifecycle.RunStatus{
		lifecycle.RunStatusCancelled, lifecycle.RunStatusFailed, lifecycle.RunStatusCompleted,
		lifecycle.RunStatusIncomplete, lifecycle.RunStatusExpired,
	}
	require.Equal(t, lifecycle.RunStatusQueued, lifecycle.RunStatuses[0], "the initial status comes first")
	for _, s := range lifecycle.RunStatuses {
		require.True(t, s.Valid(), s)
		require.Equal(t, slices.Contains(terminal, s), s.Terminal(), s)
	}
	for _, s := range []lifecycle.RunStatus{"", "paused", "QUEUED", "canceled"} {
		require.False(t, s.Valid(), s)
		require.False(t, s.Terminal(), s)
	}
}

// goldenRuns are the run shapes whose JSON form testdata/golden/NAME.json
// holds, exactly as Run.MarshalJSON writes it plus a final newline.
func goldenRuns() map[string]lifecycle.Run {
	failed := runIn(lifecycle.RunStatusFailed)
	failed.LastError = &lifecycle.LastError{
		Code:    lifecycle.ErrorCodeInvalidPrompt,
		Message: "Your prompt was flagged as potentially violating our usage policy.",
	}

	withMetadata := runIn(lifecycle.RunStatusInProgress)
	withMetadata.Metadata = lifecycle.Metadata{"user_id": "u_42", "tier": "pro", "note": "naïve café"}

	return map[string]lifecycle.Run{
		"run_queued":                queuedRun(),
		"run_in_progress":           runIn(lifecycle.RunStatusInProgress),
		"run_requires_action":       runIn(lifecycle.RunStatusRequiresAction),
		"run_completed":             runIn(lifecycle.RunStatusCompleted),
		"run_expired":               runIn(lifecycle.RunStatusExpired),
		"run_failed_invalid_prompt": failed,
		"run_with_metadata":         withMetadata,
	}
}

func TestRunJSONGolden(t *testing.T) {
	keys := []string{
		"id", "object", "created_at", "assistant_id", "thread_id", "status", "started_at", "expires_at",
		"cancelled_at", "failed_at", "completed_at", "last_error", "metadata",
	}
	for name, run := range goldenRuns() {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, run.Validate())
			b, err := json.Marshal(run)
			require.NoError(t, err)
			requireGolden(t, name+".json", append(b, '\n'))

			// Every field is written, null when unset.
			var m map[string]any
			require.NoError(t, json.Unmarshal(b, &m))
			require.ElementsMatch(t, keys, slices.Collect(maps.Keys(m)))
			assert.Equal(t, lifecycle.ObjectRun, m["object"])
			switch run.Status {
			case lifecycle.RunStatusCompleted, lifecycle.RunStatusFailed:
				assert.Nil(t, m["expires_at"], "an ended run has no deadline")
			case lifecycle.RunStatusExpired:
				assert.Equal(t, float64(runDeadline), m["expires_at"], "an expired run keeps its deadline")
			}

			var back lifecycle.Run
			require.NoError(t, json.Unmarshal(b, &back))
			require.Equal(t, run, back)
		})
	}
}

// recordedRunCompleted is the run object of the thread.run.completed event
// in shared/recordings/openai_streaming_tool_call.sse, as OpenAI sent it:
// with model, tools, usage and the other fields a Run passes over.
var recordedRunCompleted = recordedRuns[len(recordedRuns)-1].data

func TestUnmarshalRecordedRun(t *testing.T) {
	var got lifecycle.Run
	require.NoError(t, json.Unmarshal([]byte(recordedRunCompleted), &got))
	want := lifecycle.Run{
		ID:          "run_oyfV44CrJXYJkvb2qsd80LvJ",
		CreatedAt:   1761861531,
		ThreadID:    "thread_6oUGUBxLwhyApwhYBhWjHI5f",
		AssistantID: "asst_BFMmpHsel3a7MuFuKKY9i5uG",
		Status:      lifecycle.RunStatusCompleted,
		StartedAt:   ptr(int64(1761861535)),
		CompletedAt: ptr(int64(1761861536)),
		Metadata:    lifecycle.Metadata{},
	}
	require.Equal(t, want, got)

	out, err := json.Marshal(got)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(out, &m))
	assert.NotContains(t, m, "model")
	assert.NotContains(t, m, "usage")
	var back lifecycle.Run
	require.NoError(t, json.Unmarshal(out, &back))
	require.Equal(t, got, back)
}

// runJSON returns the JSON form of r after edit changed its keys.
func runJSON(t *testing.T, r lifecycle.Run, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	edit(m)
	b, err = json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestUnmarshalRunLenient(t *testing.T) {
	tests := []struct {
		name string
		run  lifecycle.Run // what is encoded
		edit func(m map[string]any)
		want lifecycle.Run // what decoding gives
	}{
		{
			name: "missing nullable fields are null",
			run:  runIn(lifecycle.RunStatusCancelled),
			edit: func(m map[string]any) {
				for _, k := range []string{"expires_at", "failed_at", "completed_at", "last_error", "metadata"} {
					delete(m, k)
				}
			},
			want: runIn(lifecycle.RunStatusCancelled),
		},
		{
			name: "extra keys are passed over",
			run:  runIn(lifecycle.RunStatusRequiresAction),
			edit: func(m map[string]any) {
				m["model"] = "gpt-4o"
				m["required_action"] = map[string]any{"type": "submit_tool_outputs"}
				m["usage"] = nil
				m["tools"] = []any{map[string]any{"type": "function"}}
			},
			want: runIn(lifecycle.RunStatusRequiresAction),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got lifecycle.Run
			require.NoError(t, json.Unmarshal(runJSON(t, tt.run, tt.edit), &got))
			require.Equal(t, tt.want, got)
		})
	}
}

func TestUnmarshalRunStrict(t *testing.T) {
	type testCase struct {
		name  string
		in    []byte
		field string
	}
	var tests []testCase
	for _, key := range []string{"id", "object", "created_at", "assistant_id", "thread_id", "status"} {
		tests = append(tests,
			testCase{"missing " + key, runJSON(t, queuedRun(), func(m map[string]any) { delete(m, key) }), key},
			testCase{"null " + key, runJSON(t, queuedRun(), func(m map[string]any) { m[key] = nil }), key},
		)
	}
	set := func(key string, v any) []byte {
		return runJSON(t, runIn(lifecycle.RunStatusFailed), func(m map[string]any) { m[key] = v })
	}
	tests = append(tests, []testCase{
		{"step object", set("object", lifecycle.ObjectStepLive), "object"},
		{"spec step object", set("object", lifecycle.ObjectStep), "object"},
		{"run step delta object", set("object", "thread.run.step.delta"), "object"},
		{"empty object", set("object", ""), "object"},
		{"id as a number", set("id", 1), "id"},
		{"created_at as a string", set("created_at", "1761861531"), "created_at"},
		{"created_at as a fraction", set("created_at", 1.5), "created_at"},
		{"status as a number", set("status", 3), "status"},
		{"started_at as a string", set("started_at", "soon"), "started_at"},
		{"expires_at as a bool", set("expires_at", true), "expires_at"},
		{"failed_at as an object", set("failed_at", map[string]any{}), "failed_at"},
		{"last_error as a string", set("last_error", "boom"), "last_error"},
		{"last_error code as a number", set("last_error", map[string]any{"code": 500, "message": "x"}), "last_error.code"},
		{"metadata value as a number", set("metadata", map[string]any{"k": 1}), "metadata"},
		{"metadata as a list", set("metadata", []any{"k"}), "metadata"},
		{"a list, not an object", []byte(`[]`), "(root)"},
		{"a string, not an object", []byte(`"run"`), "(root)"},
		{"null", []byte(`null`), "id"},
		{"unknown status", set("status", "paused"), "status"},
		{"empty id", set("id", ""), "id"},
		{"failed with an unknown code", set("last_error", map[string]any{"code": "timeout", "message": "x"}), "last_error.code"},
		{"failed without last_error", set("last_error", nil), "last_error"},
		{"completed without completed_at", runJSON(t, runIn(lifecycle.RunStatusCompleted), func(m map[string]any) {
			delete(m, "completed_at")
		}), "completed_at"},
		{"last_error on an in_progress run", runJSON(t, runIn(lifecycle.RunStatusInProgress), func(m map[string]any) {
			m["last_error"] = map[string]any{"code": "server_error", "message": "x"}
		}), "last_error"},
		{"17 metadata pairs", runJSON(t, queuedRun(), func(m map[string]any) {
			md := map[string]any{}
			for k, v := range metadata(17, 8, 8, "a") {
				md[k] = v
			}
			m["metadata"] = md
		}), "metadata"},
	}...)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Decoding into a run that holds data: a failure leaves it alone.
			got := runIn(lifecycle.RunStatusExpired)
			err := json.Unmarshal(tt.in, &got)
			requireInvalid(t, err, tt.field)
			require.Equal(t, runIn(lifecycle.RunStatusExpired), got)
		})
	}
}

func TestRunDiagram(t *testing.T) {
	for format, file := range map[lifecycle.DiagramFormat]string{
		lifecycle.DiagramMermaid: "run.mermaid",
		lifecycle.DiagramDOT:     "run.dot",
	} {
		t.Run(string(format), func(t *testing.T) {
			got, err := lifecycle.RunDiagram(format)
			require.NoError(t, err)
			requireGolden(t, file, []byte(got))
		})
	}

	t.Run("unknown format", func(t *testing.T) {
		got, err := lifecycle.RunDiagram("svg")
		requireInvalid(t, err, "format")
		require.Empty(t, got)
	})
}

// recordedRuns are the run objects of a real OpenAI stream, in order, as
// shared/recordings/openai_streaming_tool_call.sse holds them (its
// thread.run.queued event right after thread.run.created repeats the same
// object and is left out).
var recordedRuns = []struct{ event, data string }{
	{"thread.run.created", `{"id":"run_oyfV44CrJXYJkvb2qsd80LvJ","object":"thread.run","created_at":1761861531,"assistant_id":"asst_BFMmpHsel3a7MuFuKKY9i5uG","thread_id":"thread_6oUGUBxLwhyApwhYBhWjHI5f","status":"queued","started_at":null,"expires_at":1761862131,"cancelled_at":null,"failed_at":null,"completed_at":null,"required_action":null,"last_error":null,"model":"gpt-4o","instructions":null,"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Gets the user's current weather","parameters":{"type":"object","properties":{}},"strict":false}}],"tool_resources":{"code_interpreter":{"file_ids":[]}},"metadata":{},"temperature":1.0,"top_p":1.0,"reasoning_effort":null,"max_completion_tokens":null,"max_prompt_tokens":null,"truncation_strategy":{"type":"auto","last_messages":null},"incomplete_details":null,"usage":null,"response_format":"auto","tool_choice":"auto","parallel_tool_calls":true}`},
	{"thread.run.in_progress", `{"id":"run_oyfV44CrJXYJkvb2qsd80LvJ","object":"thread.run","created_at":1761861531,"assistant_id":"asst_BFMmpHsel3a7MuFuKKY9i5uG","thread_id":"thread_6oUGUBxLwhyApwhYBhWjHI5f","status":"in_progress","started_at":1761861532,"expires_at":1761862131,"cancelled_at":null,"failed_at":null,"completed_at":null,"required_action":null,"last_error":null,"model":"gpt-4o","instructions":null,"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Gets the user's current weather","parameters":{"type":"object","properties":{}},"strict":false}}],"tool_resources":{"code_interpreter":{"file_ids":[]}},"metadata":{},"temperature":1.0,"top_p":1.0,"reasoning_effort":null,"max_completion_tokens":null,"max_prompt_tokens":null,"truncation_strategy":{"type":"auto","last_messages":null},"incomplete_details":null,"usage":null,"response_format":"auto","tool_choice":"auto","parallel_tool_calls":true}`},
	{"thread.run.requires_action", `{"id":"run_oyfV44CrJXYJkvb2qsd80LvJ","object":"thread.run","created_at":1761861531,"assistant_id":"asst_BFMmpHsel3a7MuFuKKY9i5uG","thread_id":"thread_6oUGUBxLwhyApwhYBhWjHI5f","status":"requires_action","started_at":1761861532,"expires_at":1761862131,"cancelled_at":null,"failed_at":null,"completed_at":null,"required_action":{"type":"submit_tool_outputs","submit_tool_outputs":{"tool_calls":[{"id":"call_xyFYaEeyocjyE6jN64QTcxip","type":"function","function":{"name":"get_current_weather","arguments":"{}"}}]}},"last_error":null,"model":"gpt-4o","instructions":null,"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Gets the user's current weather","parameters":{"type":"object","properties":{}},"strict":false}}],"tool_resources":{"code_interpreter":{"file_ids":[]}},"metadata":{},"temperature":1.0,"top_p":1.0,"reasoning_effort":null,"max_completion_tokens":null,"max_prompt_tokens":null,"truncation_strategy":{"type":"auto","last_messages":null},"incomplete_details":null,"usage":null,"response_format":"auto","tool_choice":"auto","parallel_tool_calls":true}`},
	{"thread.run.queued", `{"id":"run_oyfV44CrJXYJkvb2qsd80LvJ","object":"thread.run","created_at":1761861531,"assistant_id":"asst_BFMmpHsel3a7MuFuKKY9i5uG","thread_id":"thread_6oUGUBxLwhyApwhYBhWjHI5f","status":"queued","started_at":1761861532,"expires_at":1761862131,"cancelled_at":null,"failed_at":null,"completed_at":null,"required_action":null,"last_error":null,"model":"gpt-4o","instructions":null,"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Gets the user's current weather","parameters":{"type":"object","properties":{}},"strict":false}}],"tool_resources":{"code_interpreter":{"file_ids":[]}},"metadata":{},"temperature":1.0,"top_p":1.0,"reasoning_effort":null,"max_completion_tokens":null,"max_prompt_tokens":null,"truncation_strategy":{"type":"auto","last_messages":null},"incomplete_details":null,"usage":null,"response_format":"auto","tool_choice":"auto","parallel_tool_calls":true}`},
	{"thread.run.in_progress", `{"id":"run_oyfV44CrJXYJkvb2qsd80LvJ","object":"thread.run","created_at":1761861531,"assistant_id":"asst_BFMmpHsel3a7MuFuKKY9i5uG","thread_id":"thread_6oUGUBxLwhyApwhYBhWjHI5f","status":"in_progress","started_at":1761861535,"expires_at":1761862131,"cancelled_at":null,"failed_at":null,"completed_at":null,"required_action":null,"last_error":null,"model":"gpt-4o","instructions":null,"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Gets the user's current weather","parameters":{"type":"object","properties":{}},"strict":false}}],"tool_resources":{"code_interpreter":{"file_ids":[]}},"metadata":{},"temperature":1.0,"top_p":1.0,"reasoning_effort":null,"max_completion_tokens":null,"max_prompt_tokens":null,"truncation_strategy":{"type":"auto","last_messages":null},"incomplete_details":null,"usage":null,"response_format":"auto","tool_choice":"auto","parallel_tool_calls":true}`},
	{"thread.run.completed", `{"id":"run_oyfV44CrJXYJkvb2qsd80LvJ","object":"thread.run","created_at":1761861531,"assistant_id":"asst_BFMmpHsel3a7MuFuKKY9i5uG","thread_id":"thread_6oUGUBxLwhyApwhYBhWjHI5f","status":"completed","started_at":1761861535,"expires_at":null,"cancelled_at":null,"failed_at":null,"completed_at":1761861536,"required_action":null,"last_error":null,"model":"gpt-4o","instructions":null,"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Gets the user's current weather","parameters":{"type":"object","properties":{}},"strict":false}}],"tool_resources":{"code_interpreter":{"file_ids":[]}},"metadata":{},"temperature":1.0,"top_p":1.0,"reasoning_effort":null,"max_completion_tokens":null,"max_prompt_tokens":null,"truncation_strategy":{"type":"auto","last_messages":null},"incomplete_details":null,"usage":{"prompt_tokens":544,"completion_tokens":54,"total_tokens":598,"prompt_token_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"response_format":"auto","tool_choice":"auto","parallel_tool_calls":true}`},
}

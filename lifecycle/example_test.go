package lifecycle_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/runstep/runstep/lifecycle"
)

func ExampleStep_Apply() {
	step := lifecycle.Step{
		ID:          "step_1",
		CreatedAt:   1761861531,
		AssistantID: "asst_1",
		ThreadID:    "thread_1",
		RunID:       "run_1",
		Type:        lifecycle.TypeMessageCreation,
		Status:      lifecycle.StatusInProgress,
		Details:     lifecycle.MessageCreationDetails("msg_1"),
	}

	failed, err := step.Apply(lifecycle.Change{
		Trigger: lifecycle.TriggerFail,
		At:      time.Unix(1761861534, 0),
		Error:   &lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "Rate limit reached"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(failed.Status, *failed.FailedAt, failed.LastError.Code)

	// Nothing leaves a terminal status.
	_, err = failed.Apply(lifecycle.Change{Trigger: lifecycle.TriggerComplete, At: time.Unix(1761861535, 0)})
	fmt.Println(err)
	fmt.Println(errors.Is(err, lifecycle.ErrInvalidTransition))
	// Output:
	// failed 1761861534 rate_limit_exceeded
	// lifecycle: step_1: cannot complete from status failed
	// true
}

func ExampleStepDiagram() {
	diagram, err := lifecycle.StepDiagram(lifecycle.DiagramMermaid)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(diagram)
	// Output:
	// stateDiagram-v2
	//     [*] --> in_progress
	//     in_progress --> cancelled: cancel
	//     in_progress --> completed: complete
	//     in_progress --> expired: expire
	//     in_progress --> failed: fail
}

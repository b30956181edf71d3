// Package lifecycle owns the domain of runstep: the run step object of the
// Assistants API, its statuses and details, its JSON form, its validation,
// and the one finite state machine that decides every status change.
//
// The package is pure: it does no I/O and never reads a clock. Every
// transition receives its time as an argument.
//
// # The step machine
//
// A step is created in_progress. Four triggers move it to one of four
// terminal statuses, and nothing leaves a terminal status:
//
//	in_progress --complete--> completed
//	in_progress --fail------> failed
//	in_progress --cancel----> cancelled
//	in_progress --expire----> expired
//
// The machine is defined once, with github.com/looplab/fsm ([StepMachine]).
// The transition path ([Step.Apply]) does not build a looplab FSM per call;
// it reads a table compiled from that same definition when the package is
// loaded, and the tests prove that table and looplab agree on every status ×
// trigger pair.
//
// # The run machine
//
// A run ([Run]) has OpenAI's run statuses and is created queued. The table
// says where each trigger takes a run from each status that can be left;
// "-" is a trigger the machine refuses there. Completed, incomplete, failed,
// cancelled and expired are terminal: every trigger is refused.
//
//	trigger              queued       in_progress      requires_action  cancelling
//	-------------------  -----------  ---------------  ---------------  ----------
//	start                in_progress  -                -                -
//	require_action       -            requires_action  -                -
//	submit_tool_outputs  -            -                queued           -
//	resume               -            -                in_progress      -
//	complete             -            completed        -                completed
//	incomplete           -            incomplete       -                -
//	fail                 failed       failed           failed           failed
//	cancel               cancelling   cancelling       cancelling       -
//	finish_cancel        -            -                -                cancelled
//	expire               expired      expired          expired          expired
//
// A cancel races the run's own outcome: a cancelling run still completes,
// fails or expires if that comes first. [Run.Apply] stamps started_at on
// start (again on each start, as OpenAI does after tool outputs are
// submitted), completed_at on complete and incomplete, failed_at and
// last_error on fail, cancelled_at on finish_cancel, and sets expires_at
// to the time of expire (the run object has no expired_at); it clears
// expires_at on every other terminal status. [RunMachine] is the looplab
// definition and [RunDiagram] draws it.
//
// When a run ends, its steps still in progress follow it as a
// [CascadePolicy] says ([DefaultCascadePolicy]: expire, cancel or fail them
// with the run; refuse to complete a run whose steps are still running).
//
// # Errors
//
// The package returns two error types, because callers handle two different
// failures: [*TransitionError] (the step or run is not in a status the
// trigger leaves; unwraps to [ErrInvalidTransition]) and [*ValidationError] (the
// input is malformed; unwraps to [ErrInvalid] and names the field).
package lifecycle

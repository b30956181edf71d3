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
// # Errors
//
// The package returns two error types, because callers handle two different
// failures: [*TransitionError] (the step is not in a status the trigger
// leaves; unwraps to [ErrInvalidTransition]) and [*ValidationError] (the
// input is malformed; unwraps to [ErrInvalid] and names the field).
package lifecycle

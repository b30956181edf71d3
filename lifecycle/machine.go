package lifecycle

import (
	"github.com/looplab/fsm"
)

// Trigger is what moves a step out of in_progress. Its value is the looplab
// event name.
type Trigger string

// The step triggers.
const (
	TriggerComplete Trigger = "complete"
	TriggerFail     Trigger = "fail"
	TriggerCancel   Trigger = "cancel"
	TriggerExpire   Trigger = "expire"
)

// Triggers lists every step trigger.
var Triggers = []Trigger{TriggerComplete, TriggerFail, TriggerCancel, TriggerExpire}

// stepEvents is the one definition of the step machine.
var stepEvents = fsm.Events{
	{Name: string(TriggerComplete), Src: []string{string(StatusInProgress)}, Dst: string(StatusCompleted)},
	{Name: string(TriggerFail), Src: []string{string(StatusInProgress)}, Dst: string(StatusFailed)},
	{Name: string(TriggerCancel), Src: []string{string(StatusInProgress)}, Dst: string(StatusCancelled)},
	{Name: string(TriggerExpire), Src: []string{string(StatusInProgress)}, Dst: string(StatusExpired)},
}

var stepMachine = newMachine[Status, Trigger](stepEvents)

// StepMachine returns a new looplab FSM of the step machine, standing in
// status from. It is the definition; [NextStatus] answers from a table
// compiled from it.
func StepMachine(from Status) *fsm.FSM { return stepMachine.fsm(from) }

// NextStatus returns the status trigger t moves a step in status from to,
// and false if the machine refuses t there.
func NextStatus(from Status, t Trigger) (Status, bool) { return stepMachine.next(from, t) }

// StepDiagram renders the step machine in Mermaid's stateDiagram-v2 form or
// Graphviz DOT, drawn by looplab/fsm from the definition.
func StepDiagram(format DiagramFormat) (string, error) {
	return stepMachine.diagram(StatusInProgress, format)
}

// DiagramFormat is a diagram language.
type DiagramFormat string

// The diagram formats.
const (
	DiagramMermaid DiagramFormat = "mermaid"
	DiagramDOT     DiagramFormat = "dot"
)

// machine is a looplab definition plus the transition table compiled from
// it. Building a looplab FSM costs about a microsecond and a kilobyte, so
// the transition path reads the table instead.
type machine[S, T ~string] struct {
	events fsm.Events
	table  map[edge[S, T]]S
}

type edge[S, T ~string] struct {
	from    S
	trigger T
}

func newMachine[S, T ~string](events fsm.Events) *machine[S, T] {
	m := &machine[S, T]{events: events, table: make(map[edge[S, T]]S)}
	for _, ev := range events {
		for _, src := range ev.Src {
			m.table[edge[S, T]{S(src), T(ev.Name)}] = S(ev.Dst)
		}
	}
	return m
}

func (m *machine[S, T]) fsm(from S) *fsm.FSM {
	return fsm.NewFSM(string(from), m.events, nil)
}

func (m *machine[S, T]) next(from S, t T) (S, bool) {
	to, ok := m.table[edge[S, T]{from, t}]
	return to, ok
}

func (m *machine[S, T]) diagram(initial S, format DiagramFormat) (string, error) {
	switch format {
	case DiagramMermaid:
		return fsm.VisualizeWithType(m.fsm(initial), fsm.MermaidStateDiagram)
	case DiagramDOT:
		return fsm.VisualizeWithType(m.fsm(initial), fsm.GRAPHVIZ)
	}
	return "", invalid("format", string(format), "unknown diagram format: want mermaid or dot")
}

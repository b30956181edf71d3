module github.com/runstep/runstep

go 1.26

require (
	github.com/benbjohnson/clock v1.3.5
	github.com/looplab/fsm v1.0.3
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
)

require golang.org/x/text v0.14.0 // indirect

module github.com/runstep/runstep

go 1.26.0

require (
	github.com/benbjohnson/clock v1.3.5
	github.com/google/btree v1.1.3
	github.com/looplab/fsm v1.0.3
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	github.com/stretchr/testify v1.12.1
)

require (
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/text v0.41.0 // indirect
)

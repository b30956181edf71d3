package postgres_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/store/postgres"
)

// Each engine process opens its own Store on the shared schema, and
// watches it to learn of the others' commits.
func ExampleOpen() {
	ctx := context.Background()
	st, err := postgres.Open(ctx, os.Getenv("RUNSTEP_POSTGRES_DSN"), postgres.WithSchema("runstep"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(st)
	if err != nil {
		log.Fatal(err)
	}
	commits, err := st.Watch(ctx)
	if err != nil {
		log.Fatal(err)
	}
	run, err := eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_abc", AssistantID: "asst_abc"})
	if err != nil {
		log.Fatal(err)
	}
	<-commits // this commit, or any other engine's
	fmt.Println(run.Status)
}

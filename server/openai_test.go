package server_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/server"
)

// OpenAI's official Go client reads runstep's steps as it reads OpenAI's:
// pages, cursors, has_more, one step, and errors.
func TestOpenAIClient(t *testing.T) {
	const token = "sk-runstep-test"
	f := newFixture(t, nil, server.WithToken(token))
	ctx := context.Background()
	f.startRun(t, "run_1", threadID)
	const n = 250
	ids := make([]string, 0, n)
	for i := range n {
		if i%3 == 0 { // several steps share a second: the id breaks the tie
			f.clock.Add(time.Second)
		}
		ids = append(ids, f.toolStep(t, "run_1").ID)
	}
	// The API's order: by created_at, then id.
	asc := slices.Clone(ids)
	for i := 0; i < n; i += 3 {
		slices.Sort(asc[i:min(i+3, n)])
	}
	desc := slices.Clone(asc)
	slices.Reverse(desc)

	client := openai.NewClient(
		option.WithBaseURL(f.ts.URL+"/v1/"),
		option.WithAPIKey(token),
		option.WithHTTPClient(f.ts.Client()),
		option.WithMaxRetries(0),
	)
	steps := client.Beta.Threads.Runs.Steps

	for _, tc := range []struct {
		order openai.BetaThreadRunStepListParamsOrder
		want  []string
	}{
		{openai.BetaThreadRunStepListParamsOrderAsc, asc},
		{openai.BetaThreadRunStepListParamsOrderDesc, desc},
	} {
		t.Run("pages "+string(tc.order), func(t *testing.T) {
			page, err := steps.List(ctx, threadID, "run_1", openai.BetaThreadRunStepListParams{
				Limit: openai.Int(100), Order: tc.order,
				Include: []openai.RunStepInclude{openai.RunStepIncludeStepDetailsToolCallsFileSearchResultsContent},
			})
			require.NoError(t, err)
			var got []string
			var sizes []int
			for page != nil {
				for _, s := range page.Data {
					got = append(got, s.ID)
				}
				sizes = append(sizes, len(page.Data))
				assert.Equal(t, len(got) < n, page.HasMore, "has_more after %d steps", len(got))
				page, err = page.GetNextPage()
				require.NoError(t, err)
			}
			assert.Equal(t, []int{100, 100, 50}, sizes)
			assert.Equal(t, tc.want, got, "every step once, in order")
		})

		t.Run("auto-paging "+string(tc.order), func(t *testing.T) {
			iter := steps.ListAutoPaging(ctx, threadID, "run_1", openai.BetaThreadRunStepListParams{
				Limit: openai.Int(7), Order: tc.order,
			})
			var got []string
			for iter.Next() {
				got = append(got, iter.Current().ID)
			}
			require.NoError(t, iter.Err())
			assert.Equal(t, tc.want, got)
		})

		t.Run("pages back with before "+string(tc.order), func(t *testing.T) {
			// From the end back to the start, as a client pages backwards.
			var got []string
			before := tc.want[n-1]
			got = append(got, before)
			for {
				page, err := steps.List(ctx, threadID, "run_1", openai.BetaThreadRunStepListParams{
					Limit: openai.Int(100), Order: tc.order, Before: openai.String(before),
				})
				require.NoError(t, err)
				got = append(slices.Clone(idsOf(page.Data)), got...)
				if !page.HasMore {
					break
				}
				before = page.Data[0].ID
			}
			assert.Equal(t, tc.want, got)
		})
	}

	t.Run("one step", func(t *testing.T) {
		want, err := f.eng.GetStep(ctx, asc[42])
		require.NoError(t, err)
		got, err := steps.Get(ctx, threadID, "run_1", want.ID, openai.BetaThreadRunStepGetParams{})
		require.NoError(t, err)
		assert.Equal(t, want.ID, got.ID)
		assert.Equal(t, "run_1", got.RunID)
		assert.Equal(t, threadID, got.ThreadID)
		assert.Equal(t, want.CreatedAt, got.CreatedAt)
		assert.Equal(t, openai.RunStepStatus(lifecycle.StatusInProgress), got.Status)
		assert.Equal(t, openai.RunStepType(lifecycle.TypeToolCalls), got.Type)
		assert.True(t, got.JSON.CompletedAt.Valid() == false, "completed_at is null")
		// The client keeps the object it was sent: runstep writes the spec's
		// "assistant.run.step" where OpenAI sends "thread.run.step", and the
		// client takes it without complaint.
		assert.Equal(t, lifecycle.ObjectStep, string(got.Object))
		assert.True(t, got.JSON.Object.Valid())
	})

	t.Run("not found", func(t *testing.T) {
		for name, call := range map[string]func() error{
			"step": func() error {
				_, err := steps.Get(ctx, threadID, "run_1", "step_nope", openai.BetaThreadRunStepGetParams{})
				return err
			},
			"step of another thread": func() error {
				_, err := steps.Get(ctx, "thread_2", "run_1", asc[0], openai.BetaThreadRunStepGetParams{})
				return err
			},
			"run": func() error {
				_, err := steps.List(ctx, threadID, "run_nope", openai.BetaThreadRunStepListParams{})
				return err
			},
		} {
			t.Run(name, func(t *testing.T) {
				err := call()
				var apiErr *openai.Error
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
				assert.Equal(t, "invalid_request_error", apiErr.Type)
				assert.Contains(t, apiErr.Message, "No ")
			})
		}
	})

	t.Run("bad limit", func(t *testing.T) {
		_, err := steps.List(ctx, threadID, "run_1", openai.BetaThreadRunStepListParams{Limit: openai.Int(101)})
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
		assert.Equal(t, "limit", apiErr.Param)
	})

	t.Run("wrong key", func(t *testing.T) {
		_, err := steps.Get(ctx, threadID, "run_1", asc[0], openai.BetaThreadRunStepGetParams{}, option.WithAPIKey("sk-wrong"))
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)
		assert.Equal(t, "invalid_api_key", apiErr.Code)
	})

	t.Run("the run", func(t *testing.T) {
		run, err := client.Beta.Threads.Runs.Get(ctx, threadID, "run_1")
		require.NoError(t, err)
		assert.Equal(t, "run_1", run.ID)
		assert.Equal(t, openai.RunStatusInProgress, run.Status)
	})
}

func idsOf(steps []openai.RunStep) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.ID
	}
	return out
}

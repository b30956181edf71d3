package engine_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/lifecycle"
)

// createSteps makes n steps in run_1, two per clock second so that ties on
// created_at are broken by id, and returns them in ascending list order.
func createSteps(t *testing.T, f fixture, n int) []lifecycle.Step {
	t.Helper()
	steps := make([]lifecycle.Step, n)
	for i := range steps {
		if i%2 == 0 {
			f.clock.Add(time.Second)
		}
		steps[i] = f.toolStep(t)
	}
	slices.SortFunc(steps, func(a, b lifecycle.Step) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return steps
}

func ids(steps []lifecycle.Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.ID
	}
	return out
}

func TestListStepsDefaultsToNewestTwenty(t *testing.T) {
	f := newFixture(t)
	createSteps(t, f, 30)
	all, err := f.eng.ListSteps(context.Background(), engine.ListParams{RunID: "run_1", Limit: 100, Order: engine.OrderAsc})
	require.NoError(t, err)
	require.Len(t, all.Data, 30)

	list, err := f.eng.ListSteps(context.Background(), engine.ListParams{RunID: "run_1"})
	require.NoError(t, err)
	require.Len(t, list.Data, 20)
	assert.True(t, list.HasMore)
	assert.Equal(t, all.Data[29].ID, list.Data[0].ID, "desc: newest first")
	for i := 1; i < len(list.Data); i++ {
		prev, cur := list.Data[i-1], list.Data[i]
		assert.True(t, prev.CreatedAt > cur.CreatedAt || prev.CreatedAt == cur.CreatedAt && prev.ID > cur.ID,
			"desc by created_at, then id")
	}
	assert.Equal(t, "list", list.Object)
	assert.Equal(t, list.Data[0].ID, *list.FirstID)
	assert.Equal(t, list.Data[19].ID, *list.LastID)
}

func TestListStepsPagesWithoutGapsOrRepeats(t *testing.T) {
	f := newFixture(t)
	steps := createSteps(t, f, 250)
	for _, order := range []engine.Order{engine.OrderAsc, engine.OrderDesc} {
		t.Run(string(order), func(t *testing.T) {
			var seen []string
			after := ""
			for page := 0; ; page++ {
				list, err := f.eng.ListSteps(context.Background(), engine.ListParams{RunID: "run_1", Limit: 100, Order: order, After: after})
				require.NoError(t, err)
				seen = append(seen, ids(list.Data)...)
				assert.Equal(t, page < 2, list.HasMore, "page %d", page)
				if !list.HasMore {
					break
				}
				after = *list.LastID
			}
			want := ids(steps)
			if order == engine.OrderDesc {
				slices.Reverse(want)
			}
			assert.Equal(t, want, seen)
		})
	}
}

func TestListStepsBeforeReturnsThePreviousPage(t *testing.T) {
	f := newFixture(t)
	steps := createSteps(t, f, 10)
	list, err := f.eng.ListSteps(context.Background(), engine.ListParams{RunID: "run_1", Order: engine.OrderAsc, Before: steps[6].ID, Limit: 3})
	require.NoError(t, err)
	assert.Equal(t, ids(steps[3:6]), ids(list.Data))
	assert.True(t, list.HasMore, "steps 0-2 lie beyond")
}

func TestListStepsRefusesBadParams(t *testing.T) {
	f := newFixture(t)
	createSteps(t, f, 3)
	f.startRun(t, "run_2")
	other, err := f.eng.CreateStep(context.Background(), engine.NewStep{RunID: "run_2", Type: lifecycle.TypeToolCalls})
	require.NoError(t, err)

	cases := []struct {
		params engine.ListParams
		param  string
	}{
		{engine.ListParams{RunID: "run_1", Limit: 101}, "limit"},
		{engine.ListParams{RunID: "run_1", Limit: -1}, "limit"},
		{engine.ListParams{RunID: "run_1", Order: "sideways"}, "order"},
		{engine.ListParams{RunID: "run_1", After: "step_nope"}, "after"},
		{engine.ListParams{RunID: "run_1", After: other.ID}, "after"},
		{engine.ListParams{RunID: "run_1", Before: "step_nope"}, "before"},
		{engine.ListParams{}, "run_id"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%+v", tc.params), func(t *testing.T) {
			_, err := f.eng.ListSteps(context.Background(), tc.params)
			require.ErrorIs(t, err, engine.ErrInvalidArgument)
			var aerr *engine.ArgumentError
			require.ErrorAs(t, err, &aerr)
			assert.Equal(t, tc.param, aerr.Param)
		})
	}
}

func TestEmptyListJSON(t *testing.T) {
	f := newFixture(t)
	list, err := f.eng.ListSteps(context.Background(), engine.ListParams{RunID: "run_none"})
	require.NoError(t, err)
	b, err := json.Marshal(list)
	require.NoError(t, err)
	assert.JSONEq(t, `{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}`, string(b))
}

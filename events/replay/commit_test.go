package replay_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/events/replay"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

// recorder is a memory store that records the commits it is given, and
// can refuse some.
type recorder struct {
	store.Store
	// failSeq refuses a commit with the event of this (log) seq;
	// maxBatch refuses a commit of more events than that.
	failSeq  int64
	maxBatch int

	mu      sync.Mutex // guards commits
	commits [][]int64  // the log seqs of each commit taken
}

var errRefused = errors.New("refused")

func (s *recorder) Commit(ctx context.Context, b store.Batch) (int64, error) {
	var seqs []int64
	for _, ev := range b.Events {
		if ev.Seq == s.failSeq {
			return 0, errRefused
		}
		seqs = append(seqs, ev.Seq)
	}
	if s.maxBatch > 0 && len(b.Events) > s.maxBatch {
		return 0, errRefused
	}
	first, err := s.Store.Commit(ctx, b)
	if err == nil {
		s.mu.Lock()
		s.commits = append(s.commits, seqs)
		s.mu.Unlock()
	}
	return first, err
}

// committed returns the seqs committed, in order.
func (s *recorder) committed() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := []int64{}
	for _, c := range s.commits {
		all = append(all, c...)
	}
	return all
}

// seqs returns 1, 2, …, n.
func seqs(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

// Replay commits events a group at a time, never naming one object twice
// in a commit (which a store refuses), in the order of the log.
func TestReplayCommitsInGroups(t *testing.T) {
	h := fixedHistory(t)
	evs, log := h.log(t)
	st := &recorder{Store: memory.New()}

	rep, err := replay.Run(context.Background(), st, events.NewReader(bytes.NewReader(log), events.ReadOptions{}), replay.Options{})

	require.NoError(t, err)
	assert.EqualValues(t, len(evs), rep.Applied)
	assert.Equal(t, seqs(len(evs)), st.committed())
	assert.Less(t, len(st.commits), len(evs), "every commit holds one event")
	object := map[int64]string{}
	for _, ev := range evs {
		if ev.Run != nil {
			object[ev.Seq] = "run " + ev.Run.ID
		} else {
			object[ev.Seq] = "step " + ev.Step.ID
		}
	}
	for _, c := range st.commits {
		named := map[string]bool{}
		for _, seq := range c {
			assert.False(t, named[object[seq]], "commit %v names %s twice", c, object[seq])
			named[object[seq]] = true
		}
	}
	requireSameState(t, h.st, st.Store, evs)
}

// A commit the store refuses is made again an event at a time: the events
// before the one refused are stored, and the replay stops at it, as if
// every event had been committed alone.
func TestReplayStopsAtTheEventTheStoreRefuses(t *testing.T) {
	evs, log := fixedHistory(t).log(t)
	for _, failSeq := range []int64{1, 2, 3, int64(len(evs) / 2), int64(len(evs))} {
		st := &recorder{Store: memory.New(), failSeq: failSeq}

		rep, err := replay.Run(context.Background(), st, events.NewReader(bytes.NewReader(log), events.ReadOptions{}), replay.Options{Audit: true})

		require.ErrorIs(t, err, errRefused, "seq %d", failSeq)
		assert.Contains(t, err.Error(), "seq "+strconv.FormatInt(failSeq, 10)+":")
		assert.EqualValues(t, failSeq-1, rep.Applied)
		assert.Equal(t, seqs(int(failSeq-1)), st.committed())
		assert.Empty(t, rep.Problems, "a store error is no problem of the log")
	}
}

// A store that takes one event at a time still gets every event.
func TestReplayCommitsToAStoreOfSingleEvents(t *testing.T) {
	evs, log := fixedHistory(t).log(t)
	st := &recorder{Store: memory.New(), maxBatch: 1}

	rep, err := replay.Run(context.Background(), st, events.NewReader(bytes.NewReader(log), events.ReadOptions{}), replay.Options{})

	require.NoError(t, err)
	assert.EqualValues(t, len(evs), rep.Applied)
	assert.Equal(t, seqs(len(evs)), st.committed())
	assert.Len(t, st.commits, len(evs))
}

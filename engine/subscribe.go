package engine

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/runstep/runstep/events"
)

// subscribeBatch is how many events a subscription reads from the store at
// a time.
const subscribeBatch = 256

// Subscribe returns the events with Seq > after, in commit order, and then
// each new event as it commits, until ctx is done (the last pair then
// carries ctx's error) or the caller stops ranging.
//
// A subscription reads the store's event log at its own pace: a slow
// subscriber falls behind but never blocks a writer, and never misses an
// event, because it reads from the log rather than from a buffer that could
// overflow. The engine only wakes it when something commits, so an idle
// subscription costs nothing but a goroutine waiting on a channel. It sees
// commits made through this engine; events other processes write to a
// shared store are read on the next wake-up.
func (e *Engine) Subscribe(ctx context.Context, after int64) iter.Seq2[events.Event, error] {
	return func(yield func(events.Event, error) bool) {
		for {
			// Take the wake-up channel before reading, so a commit between
			// the read and the wait still wakes us.
			wake := e.changed.wait()
			evs, err := e.store.Events(ctx, after, subscribeBatch)
			if err != nil {
				yield(events.Event{}, fmt.Errorf("engine: subscribe after %d: %w", after, err))
				return
			}
			for _, ev := range evs {
				if !yield(ev, nil) {
					return
				}
				after = ev.Seq
			}
			if len(evs) > 0 {
				continue
			}
			select {
			case <-ctx.Done():
				yield(events.Event{}, ctx.Err())
				return
			case <-wake:
			}
		}
	}
}

// notifier wakes everyone waiting for the next commit. It allocates a
// channel only when someone waits, so commits with no subscriber pay one
// atomic load.
type notifier struct {
	mu sync.Mutex // serializes changes of ch
	// ch is the channel the next notify closes, nil while nobody waits.
	// A waiter stores it before it reads the log; a commit is stored
	// before notify loads it. So either notify sees the channel, or the
	// waiter's read sees the commit.
	ch atomic.Pointer[chan struct{}]
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.ch.Load()
	if p == nil {
		ch := make(chan struct{})
		p = &ch
		n.ch.Store(p)
	}
	return *p
}

func (n *notifier) notify() {
	if n.ch.Load() == nil {
		return
	}
	n.mu.Lock()
	if p := n.ch.Load(); p != nil {
		close(*p)
		n.ch.Store(nil)
	}
	n.mu.Unlock()
}

// Event returns the event with the given seq, and false if the log holds
// no such event (yet). A resuming subscriber checks with it that the last
// event it had is one the log has.
func (e *Engine) Event(ctx context.Context, seq int64) (events.Event, bool, error) {
	if seq < 1 {
		return events.Event{}, false, nil
	}
	evs, err := e.store.Events(ctx, seq-1, 1)
	if err != nil {
		return events.Event{}, false, fmt.Errorf("engine: event %d: %w", seq, err)
	}
	if len(evs) == 0 {
		return events.Event{}, false, nil
	}
	return evs[0], true, nil
}

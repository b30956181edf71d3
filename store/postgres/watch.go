package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// watchState is the listener behind Watch: one connection per Store,
// LISTENing on the schema's channel, that wakes every watcher.
type watchState struct {
	// mu guards every field below.
	mu       sync.Mutex
	watchers map[chan struct{}]struct{}
	running  bool          // the listener goroutine is running
	starting chan struct{} // closed when a start under way ends; nil if none
	stopped  bool          // the store closed: no watch from now on
	done     chan struct{} // closed when the listener goroutine returns

	failures atomic.Int64 // failed reconnections, for tests
}

// Reconnection backoff of the listener: at once, then waiting from
// minBackoff doubling up to maxBackoff, on the Store's clock.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Watch implements store.Watcher with LISTEN/NOTIFY: every commit that
// appends events notifies the schema's channel inside its transaction, so
// the notification goes out when, and only if, the commit does. One
// connection per Store listens and wakes every watcher; if it breaks, it
// reconnects (backing off on the Store's clock) and wakes every watcher
// once, since notifications sent meanwhile are lost. The channel is closed
// when ctx is done or the Store closes. Watch returns once the listener is
// listening, so every commit after it returns wakes the channel; it
// returns an error if the listener cannot connect, or with WithoutNotify.
func (s *Store) Watch(ctx context.Context) (<-chan struct{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("postgres: watch: %w", err)
	}
	if !s.opts.notify {
		return nil, errors.New("postgres: watch: notifications are off (WithoutNotify)")
	}
	if err := s.startListener(ctx); err != nil {
		return nil, fmt.Errorf("postgres: watch: %w", err)
	}
	ch := make(chan struct{}, 1)
	s.w.mu.Lock()
	if s.w.stopped {
		s.w.mu.Unlock()
		return nil, fmt.Errorf("postgres: watch: %w", ErrClosed)
	}
	s.w.watchers[ch] = struct{}{}
	s.w.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.w.mu.Lock()
		defer s.w.mu.Unlock()
		if _, ok := s.w.watchers[ch]; ok {
			delete(s.w.watchers, ch)
			close(ch)
		}
	})
	return ch, nil
}

// startListener starts the listener unless it runs, and returns once it
// listens. Concurrent callers wait for one start.
func (s *Store) startListener(ctx context.Context) error {
	for {
		s.w.mu.Lock()
		switch {
		case s.w.stopped:
			s.w.mu.Unlock()
			return ErrClosed
		case s.w.running:
			s.w.mu.Unlock()
			return nil
		case s.w.starting != nil:
			wait := s.w.starting
			s.w.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		starting := make(chan struct{})
		s.w.starting = starting
		s.w.mu.Unlock()

		conn, err := s.listen(ctx)

		s.w.mu.Lock()
		s.w.starting = nil
		close(starting)
		if err == nil && s.w.stopped {
			err = ErrClosed
		}
		if err != nil {
			s.w.mu.Unlock()
			if conn != nil {
				_ = conn.Close(context.Background())
			}
			return err
		}
		s.w.running = true
		s.w.done = make(chan struct{})
		done := s.w.done
		s.w.mu.Unlock()
		go s.listenLoop(conn, done)
		return nil
	}
}

// listen opens the listener's connection, outside the pool, and LISTENs.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.connCfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		_ = conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// listenLoop wakes the watchers on every notification until the Store
// closes, reconnecting whenever the connection breaks.
func (s *Store) listenLoop(conn *pgx.Conn, done chan struct{}) {
	defer close(done)
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	for {
		_, err := conn.WaitForNotification(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		if err == nil {
			s.wake()
			continue
		}
		_ = conn.Close(context.Background())
		conn = nil
		backoff := time.Duration(0)
		for conn == nil {
			if backoff > 0 {
				t := s.opts.clock.Timer(backoff)
				select {
				case <-t.C:
				case <-s.ctx.Done():
					t.Stop()
					return
				}
			}
			conn, err = s.listen(s.ctx)
			if s.ctx.Err() != nil {
				return
			}
			if err != nil {
				s.w.failures.Add(1)
			}
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
		}
		// Whatever committed while no one listened went unannounced.
		s.wake()
	}
}

// wake sends every watcher a value, unless it has one waiting.
func (s *Store) wake() {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	for ch := range s.w.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// stopWatching ends the listener (the Store's ctx is cancelled) and
// closes every watcher's channel.
func (s *Store) stopWatching() {
	s.w.mu.Lock()
	s.w.stopped = true
	done := s.w.done
	starting := s.w.starting
	s.w.mu.Unlock()
	if starting != nil {
		<-starting
		s.w.mu.Lock()
		done = s.w.done
		s.w.mu.Unlock()
	}
	if done != nil {
		<-done
	}
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	for ch := range s.w.watchers {
		close(ch)
	}
	clear(s.w.watchers)
}

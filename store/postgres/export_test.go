package postgres

// ListenFailures returns how often s's listener failed to reconnect.
func ListenFailures(s *Store) int64 { return s.w.failures.Load() }

package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/postgres"
	"github.com/runstep/runstep/store/storetest"
)

// dsn returns the test database's DSN, and skips the test without one.
func dsn(t testing.TB) string {
	t.Helper()
	d := os.Getenv("RUNSTEP_POSTGRES_DSN")
	if d == "" {
		t.Skip("RUNSTEP_POSTGRES_DSN is not set")
	}
	return d
}

// freshSchema returns the name of a schema no other test uses, dropped
// when the test ends.
func freshSchema(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "runstep_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		dropSchema(t, schema)
	})
	return schema
}

func dropSchema(t testing.TB, schema string) {
	t.Helper()
	ctx := context.Background() // the test's context is done in Cleanup
	conn, err := pgx.Connect(ctx, dsn(t))
	if err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
	}
}

// open opens a store on schema; the caller closes it.
func open(t testing.TB, schema string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn(t), append([]postgres.Option{postgres.WithSchema(schema)}, opts...)...)
	require.NoError(t, err)
	return st
}

// admin returns a pool on the test database for looking behind the store.
func admin(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func TestConformance(t *testing.T) {
	dsn(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, freshSchema(t))
	})
}

// The suite again with every commit in a transaction of its own: the
// grouping must not change what a commit means.
func TestConformanceUngrouped(t *testing.T) {
	dsn(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, freshSchema(t), postgres.WithMaxGroup(1), postgres.WithCommitters(1))
	})
}

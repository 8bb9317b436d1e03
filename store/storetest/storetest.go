// Package storetest gives tests a fresh, migrated store on each supported
// database: a SQLite file in a temp folder, and a private schema in the
// PostgreSQL at VMS_TEST_POSTGRES (default the local test database).
package storetest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
)

// DefaultPostgres is the PostgreSQL this project's machines run for tests.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Kinds are the databases every store test runs on.
var Kinds = []string{"sqlite", "postgres"}

// Open returns a migrated store of the given kind, removed when the test ends.
func Open(t testing.TB, kind string) *store.Store {
	t.Helper()
	ctx := context.Background()
	switch kind {
	case "sqlite":
		s, err := store.Open(ctx, filepath.Join(t.TempDir(), "vms.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		migrate(t, s)
		return s
	case "postgres":
		base := os.Getenv("VMS_TEST_POSTGRES")
		if base == "" {
			base = DefaultPostgres
		}
		admin, err := store.Open(ctx, base)
		if err != nil {
			t.Fatalf("postgres at %s: %v (set VMS_TEST_POSTGRES)", redact(base), err)
		}
		schema := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")
		if _, err := admin.DB.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(base)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		s, err := store.Open(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			s.Close()
			admin.DB.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			admin.Close()
		})
		migrate(t, s)
		return s
	}
	t.Fatalf("unknown store kind %q", kind)
	return nil
}

// Each runs fn as a subtest on every database kind.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) { fn(t, Open(t, kind)) })
	}
}

func migrate(t testing.TB, s *store.Store) {
	t.Helper()
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(fmt.Errorf("migrate: %w", err))
	}
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

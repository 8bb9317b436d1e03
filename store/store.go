// Package store is the NVR's relational state: bun models, migrations and
// the queries the API, activities and workers run. It works on PostgreSQL
// (production) and on SQLite (the embedded default) alike.
package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // pure-Go SQLite driver "sqlite"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrNoCapacity: no active NVR instance can take another channel.
	ErrNoCapacity = errors.New("no NVR instance with free capacity")
)

// Store is the database handle shared by every query.
type Store struct {
	DB *bun.DB
}

// Open connects to dsn: a postgres:// URL, or a SQLite file path
// ("sqlite://path", "file:path" or a plain path). It does not migrate.
func Open(ctx context.Context, dsn string) (*Store, error) {
	var db *bun.DB
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("parse postgres dsn: %w", err)
		}
		// pgx returns timestamptz in time.Local; the store's times are UTC.
		sqldb := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(ctx context.Context, conn *pgx.Conn) error {
			conn.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
				Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
			return nil
		}))
		sqldb.SetMaxOpenConns(32)
		db = bun.NewDB(sqldb, pgdialect.New())
	default:
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create database folder: %w", err)
			}
		}
		// WAL lets readers run beside the one writer; busy_timeout makes
		// concurrent writers wait instead of failing with SQLITE_BUSY.
		q := url.Values{}
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_txlock", "immediate")
		sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		sqldb.SetMaxOpenConns(4)
		db = bun.NewDB(sqldb, sqlitedialect.New())
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect database: %w", err)
	}
	return &Store{DB: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.DB.Close() }

// IsPostgres tells which dialect is in use.
func (s *Store) IsPostgres() bool { return s.DB.Dialect().Name().String() == "pg" }

// now is the store's clock: UTC, millisecond precision, so every time reads
// back exactly as written on both databases.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// UTCms normalises a time the way the store keeps it.
func UTCms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// HashKey is how API and agent keys are stored: SHA-256, hex. Keys are
// random 32-byte secrets, so a fast hash is enough.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// migration is one schema step. Steps are append-only: never edit one that
// has shipped, add the next.
type migration struct {
	version int
	name    string
	up      func(ctx context.Context, db bun.IDB) error
}

var migrations = []migration{
	{1, "initial schema", migrateInitial},
	{2, "clips by channel and status", migrateClipsChannelStatus},
	{3, "continuous recording: channel mode and state, agent online, NVR last seen", migrateContinuousRecording},
}

// Migrate applies every pending migration, each in its own transaction.
// On PostgreSQL an advisory lock lets several replicas run it at once.
func (s *Store) Migrate(ctx context.Context) error {
	for _, m := range migrations {
		err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if s.IsPostgres() {
				if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(727001)"); err != nil {
					return err
				}
			}
			// Under the lock: concurrent CREATE TABLE IF NOT EXISTS races on PostgreSQL.
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at VARCHAR NOT NULL)`); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			n, err := tx.NewSelect().Table("schema_migrations").Where("version = ?", m.version).Count(ctx)
			if err != nil || n > 0 {
				return err
			}
			if err := m.up(ctx, tx); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.version, m.name, now().Format("2006-01-02T15:04:05Z07:00"))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

func migrateInitial(ctx context.Context, db bun.IDB) error {
	tables := []struct {
		model any
		fks   []string
	}{
		{(*Account)(nil), nil},
		{(*APIKey)(nil), []string{`("account_id") REFERENCES "accounts" ("id") ON DELETE CASCADE`}},
		{(*NVR)(nil), nil},
		{(*Agent)(nil), []string{`("account_id") REFERENCES "accounts" ("id") ON DELETE CASCADE`}},
		{(*Camera)(nil), []string{
			`("account_id") REFERENCES "accounts" ("id") ON DELETE CASCADE`,
			`("agent_id") REFERENCES "agents" ("id") ON DELETE SET NULL`,
		}},
		{(*Channel)(nil), []string{
			`("account_id") REFERENCES "accounts" ("id") ON DELETE CASCADE`,
			// A camera with channels cannot be deleted (the API answers 409).
			`("camera_id") REFERENCES "cameras" ("id") ON DELETE RESTRICT`,
			`("nvr_id") REFERENCES "nvrs" ("id") ON DELETE RESTRICT`,
		}},
		{(*StreamSession)(nil), []string{`("channel_id") REFERENCES "channels" ("id") ON DELETE CASCADE`}},
		{(*Recording)(nil), []string{`("channel_id") REFERENCES "channels" ("id") ON DELETE CASCADE`}},
		{(*Clip)(nil), []string{
			`("account_id") REFERENCES "accounts" ("id") ON DELETE CASCADE`,
			`("channel_id") REFERENCES "channels" ("id") ON DELETE CASCADE`,
		}},
		{(*ClipSegment)(nil), []string{
			`("clip_id") REFERENCES "clips" ("id") ON DELETE CASCADE`,
			`("recording_id") REFERENCES "recordings" ("id") ON DELETE CASCADE`,
		}},
		{(*Snapshot)(nil), []string{
			`("account_id") REFERENCES "accounts" ("id") ON DELETE CASCADE`,
			`("channel_id") REFERENCES "channels" ("id") ON DELETE CASCADE`,
		}},
	}
	for _, t := range tables {
		q := db.NewCreateTable().Model(t.model)
		for _, fk := range t.fks {
			q = q.ForeignKey(fk)
		}
		if _, err := q.Exec(ctx); err != nil {
			return fmt.Errorf("create table %T: %w", t.model, err)
		}
	}
	indexes := []struct {
		name, table string
		columns     []string
	}{
		{"cameras_account_idx", "cameras", []string{"account_id", "id"}},
		{"channels_account_idx", "channels", []string{"account_id", "id"}},
		{"channels_camera_idx", "channels", []string{"camera_id"}},
		{"channels_nvr_idx", "channels", []string{"nvr_id", "status"}},
		{"stream_sessions_channel_idx", "stream_sessions", []string{"channel_id", "created_at"}},
		// The hot read: recordings of a channel over a time range.
		{"recordings_channel_start_idx", "recordings", []string{"channel_id", "start_time", "id"}},
		{"clips_account_idx", "clips", []string{"account_id", "id"}},
		{"clips_channel_idx", "clips", []string{"channel_id"}},
		{"clip_segments_recording_idx", "clip_segments", []string{"recording_id"}},
		{"snapshots_account_idx", "snapshots", []string{"account_id", "id"}},
		{"snapshots_channel_idx", "snapshots", []string{"channel_id"}},
		{"agents_account_idx", "agents", []string{"account_id"}},
		{"api_keys_account_idx", "api_keys", []string{"account_id"}},
	}
	for _, ix := range indexes {
		if _, err := db.NewCreateIndex().Table(ix.table).Index(ix.name).Column(ix.columns...).Exec(ctx); err != nil {
			return fmt.Errorf("create index %s: %w", ix.name, err)
		}
	}
	return nil
}

// migrateClipsChannelStatus indexes clips by channel and status: for every
// stored segment, NotifyClips looks up the channel's clips in progress,
// which clips_channel_idx alone answers by reading all of the channel's
// clips, finished ones included.
func migrateClipsChannelStatus(ctx context.Context, db bun.IDB) error {
	_, err := db.NewCreateIndex().Table("clips").Index("clips_channel_status_idx").Column("channel_id", "status").Exec(ctx)
	if err != nil {
		return fmt.Errorf("create index clips_channel_status_idx: %w", err)
	}
	return nil
}

// migrateContinuousRecording adds what always-on recording needs: each
// channel's recording mode, quality and supervisor state, whether an agent
// is connected, and when each NVR's media worker last reported in.
// Existing channels record continuously at high quality, as new ones do.
func migrateContinuousRecording(ctx context.Context, db bun.IDB) error {
	// The type bun gives time.Time on each dialect (as in the initial schema).
	ts := "TIMESTAMP"
	if db.Dialect().Name() == dialect.PG {
		ts = "TIMESTAMPTZ"
	}
	columns := []struct{ table, column, def string }{
		{"channels", "recording", "VARCHAR NOT NULL DEFAULT 'continuous'"},
		{"channels", "record_quality", "VARCHAR NOT NULL DEFAULT 'high'"},
		{"channels", "state_status", "VARCHAR NOT NULL DEFAULT 'starting'"},
		{"channels", "state_since", ts},
		{"channels", "state_error", "VARCHAR NOT NULL DEFAULT ''"},
		{"channels", "state_restarts", "INTEGER NOT NULL DEFAULT 0"},
		{"agents", "online", "BOOLEAN NOT NULL DEFAULT FALSE"},
		{"nvrs", "last_seen_at", ts},
	}
	for _, c := range columns {
		// Migration 1 creates tables from the current models, so a new
		// database has these columns already.
		if has, err := hasColumn(ctx, db, c.table, c.column); err != nil || has {
			if err != nil {
				return fmt.Errorf("look up %s.%s: %w", c.table, c.column, err)
			}
			continue
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", c.table, c.column, c.def)); err != nil {
			return fmt.Errorf("add %s.%s: %w", c.table, c.column, err)
		}
	}
	return nil
}

// hasColumn tells whether table has column.
func hasColumn(ctx context.Context, db bun.IDB, table, column string) (bool, error) {
	var n int
	var err error
	if db.Dialect().Name() == dialect.PG {
		err = db.NewRaw(`SELECT COUNT(*) FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?`, table, column).Scan(ctx, &n)
	} else {
		err = db.NewRaw("SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?", table, column).Scan(ctx, &n)
	}
	return n > 0, err
}

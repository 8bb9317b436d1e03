package store_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows/contract"
)

func TestMigrateIdempotent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		applied := count(t, s, "schema_migrations", "")
		if applied == 0 {
			t.Fatal("schema_migrations is empty after Migrate")
		}
		a := newAccount(t, s, "kept")
		for i := range 2 {
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate again (%d): %v", i+1, err)
			}
		}
		if n := count(t, s, "schema_migrations", ""); n != applied {
			t.Errorf("schema_migrations has %d rows after re-running Migrate, want %d", n, applied)
		}
		if _, err := s.AccountByAPIKey(ctx, "none"); err != store.ErrNotFound {
			t.Errorf("query after re-migrate: %v", err)
		}
		if n := count(t, s, "accounts", "id = ?", a.ID); n != 1 {
			t.Errorf("re-running Migrate lost data: %d accounts", n)
		}
	})
}

// TestMigrateConcurrent runs Migrate from several replicas at once on an empty
// database, as API replicas do when they start together.
func TestMigrateConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		dsn := freshDatabase(t, s)
		const replicas = 6
		stores := make([]*store.Store, replicas)
		for i := range stores {
			r, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			stores[i] = r
		}
		errs := make([]error, replicas)
		var wg sync.WaitGroup
		for i, r := range stores {
			wg.Go(func() { errs[i] = r.Migrate(ctx) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("replica %d: Migrate: %v", i, err)
			}
		}
		if n := count(t, stores[0], "schema_migrations", ""); n != count(t, s, "schema_migrations", "") {
			t.Errorf("schema_migrations has %d rows after concurrent Migrate", n)
		}
	})
}

// freshDatabase returns the DSN of an empty database of the same kind as s,
// dropped when the test ends.
func freshDatabase(t *testing.T, s *store.Store) string {
	t.Helper()
	if !s.IsPostgres() {
		return filepath.Join(t.TempDir(), "fresh.db")
	}
	base := os.Getenv("VMS_TEST_POSTGRES")
	if base == "" {
		base = storetest.DefaultPostgres
	}
	schema := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := s.DB.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.DB.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestSchemaConstraints checks that the schema itself, not only the store's
// queries, refuses orphans and duplicates.
func TestSchemaConstraints(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-a", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		sess := newSession(t, s, w.ch.ID)
		rec := addRecording(t, s, w.ch.ID, sess.ID, t0, 30*time.Second)
		clip := newClip(t, s, w, t0, t0.Add(time.Minute))
		if _, err := s.AppendClipSegments(ctx, clip.ID, []uuid.UUID{rec.ID}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddAPIKey(ctx, w.acct.ID, "k", "vms_dup"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddAgent(ctx, w.acct.ID, "agent", "agt_dup"); err != nil {
			t.Fatal(err)
		}

		cases := []struct {
			name string
			do   func() error
		}{
			{"channel needs its camera", func() error {
				return s.CreateChannel(ctx, &store.Channel{AccountID: w.acct.ID, CameraID: uuid.New(), NVRID: nvr.ID})
			}},
			{"channel needs its account", func() error {
				return s.CreateChannel(ctx, &store.Channel{AccountID: uuid.New(), CameraID: w.cam.ID, NVRID: nvr.ID})
			}},
			{"camera needs its account", func() error {
				return s.CreateCamera(ctx, &store.Camera{AccountID: uuid.New(), Name: "x", Protocol: store.ProtocolRTSP})
			}},
			{"session needs its channel", func() error {
				return s.CreateSession(ctx, &store.StreamSession{ID: uuid.New(), ChannelID: uuid.New(), Quality: "low"})
			}},
			{"recording needs its channel", func() error {
				_, err := s.AddRecording(ctx, newRecording(uuid.New(), sess.ID, t0, time.Second))
				return err
			}},
			{"recording key is unique", func() error {
				dup := *rec
				dup.ID = uuid.New()
				_, err := s.DB.NewInsert().Model(&dup).Exec(ctx)
				return err
			}},
			{"clip segment needs its recording", func() error {
				_, err := s.AppendClipSegments(ctx, clip.ID, []uuid.UUID{uuid.New()})
				return err
			}},
			{"clip segment needs its clip", func() error {
				_, err := s.AppendClipSegments(ctx, uuid.New(), []uuid.UUID{rec.ID})
				return err
			}},
			{"clip segment pair is unique", func() error {
				_, err := s.DB.NewInsert().Model(&store.ClipSegment{ClipID: clip.ID, RecordingID: rec.ID, CreatedAt: t0}).Exec(ctx)
				return err
			}},
			{"snapshot needs its channel", func() error {
				return s.CreateSnapshot(ctx, &store.Snapshot{AccountID: w.acct.ID, ChannelID: uuid.New(), Source: contract.SnapshotAgent})
			}},
			{"clip needs its channel", func() error {
				return s.CreateClip(ctx, &store.Clip{AccountID: w.acct.ID, ChannelID: uuid.New(), Start: t0, End: t0.Add(time.Second)})
			}},
			{"api key hash is unique", func() error {
				_, err := s.DB.NewInsert().Model(&store.APIKey{ID: uuid.New(), AccountID: w.acct.ID, Name: "k2",
					Hash: store.HashKey("vms_dup"), CreatedAt: t0}).Exec(ctx)
				return err
			}},
			{"api key needs its account", func() error {
				return s.AddAPIKey(ctx, uuid.New(), "k", "vms_orphan")
			}},
			{"agent key is unique", func() error {
				_, err := s.AddAgent(ctx, w.acct.ID, "agent-2", "agt_dup")
				return err
			}},
			{"nvr name is unique", func() error {
				return s.CreateNVR(ctx, &store.NVR{Name: "nvr-a", MediaURL: "ws://other", Capacity: 1})
			}},
			{"camera with a channel cannot be deleted", func() error {
				_, err := s.DB.NewDelete().Model((*store.Camera)(nil)).Where("id = ?", w.cam.ID).Exec(ctx)
				return err
			}},
			{"nvr with a channel cannot be deleted", func() error {
				_, err := s.DB.NewDelete().Model((*store.NVR)(nil)).Where("id = ?", nvr.ID).Exec(ctx)
				return err
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.do(); err == nil {
					t.Error("succeeded, want a constraint violation")
				}
			})
		}
		// The refused writes left the original rows alone.
		for table, want := range map[string]int{
			"cameras": 1, "channels": 1, "nvrs": 1, "recordings": 1, "clip_segments": 1,
			"api_keys": 1, "agents": 1, "stream_sessions": 1, "snapshots": 0, "clips": 1,
		} {
			if n := count(t, s, table, ""); n != want {
				t.Errorf("%s has %d rows, want %d", table, n, want)
			}
		}
	})
}

// TestMigrateContinuousRecording upgrades a database made at version 2,
// before channels had a recording mode and state, agents an online flag and
// NVRs a last-seen time: its rows get the defaults new rows have.
func TestMigrateContinuousRecording(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		old, err := store.Open(ctx, freshDatabase(t, s))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { old.Close() })
		if err := old.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		nvr := newNVR(t, old, "nvr-a", 10, store.NVRActive)
		w := newWorld(t, old, "acme", nvr.ID)
		if _, err := old.AddAgent(ctx, w.acct.ID, "agent", "agt_old"); err != nil {
			t.Fatal(err)
		}
		// Back to version 2: migration 1 makes tables from today's models,
		// so take away what migration 3 adds.
		added := map[string][]string{
			"channels": {"recording", "record_quality", "state_status", "state_since", "state_error"},
			"agents":   {"online"},
			"nvrs":     {"last_seen_at"},
		}
		for table, columns := range added {
			for _, c := range columns {
				if _, err := old.DB.ExecContext(ctx, "ALTER TABLE "+table+" DROP COLUMN "+c); err != nil {
					t.Fatalf("drop %s.%s: %v", table, c, err)
				}
			}
		}
		if _, err := old.DB.ExecContext(ctx, "DELETE FROM schema_migrations WHERE version = 3"); err != nil {
			t.Fatal(err)
		}
		if _, err := old.ChannelByID(ctx, w.ch.ID); err == nil {
			t.Fatal("reading a channel works without the new columns: the downgrade did nothing")
		}

		if err := old.Migrate(ctx); err != nil {
			t.Fatalf("Migrate from version 2: %v", err)
		}
		ch, err := old.GetChannel(ctx, w.acct.ID, w.ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Recording != contract.RecordingContinuous || ch.RecordQuality != "high" ||
			ch.StateStatus != contract.StateStarting || ch.StateSince != nil || ch.StateError != "" {
			t.Errorf("upgraded channel: %q %q %q %v %q, want continuous high starting, no since, no error",
				ch.Recording, ch.RecordQuality, ch.StateStatus, ch.StateSince, ch.StateError)
		}
		if err := old.SetChannelState(ctx, ch.ID, store.ChannelState{Status: contract.StateRecording, Since: t0}); err != nil {
			t.Errorf("SetChannelState after upgrade: %v", err)
		}
		if _, err := old.TouchNVR(ctx, nvr.ID); err != nil {
			t.Errorf("TouchNVR after upgrade: %v", err)
		}
		if n := count(t, old, "agents", "online = ?", false); n != 1 {
			t.Errorf("%d offline agents after upgrade, want 1", n)
		}
		if n := count(t, old, "schema_migrations", ""); n != count(t, s, "schema_migrations", "") {
			t.Errorf("%d migrations recorded after upgrade", n)
		}
	})
}

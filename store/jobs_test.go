package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows/contract"
)

func TestSessions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		ss := newSession(t, s, w.ch.ID)

		got, err := s.SessionByID(ctx, ss.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != contract.SessionAuthorized || got.StartedAt != nil || got.EndedAt != nil ||
			got.ChannelID != w.ch.ID || got.Quality != "high" || got.Worker != "nvr-1" {
			t.Errorf("new session = %+v", got)
		}
		// Creating it again (a retried activity) changes nothing.
		if err := s.CreateSession(ctx, &store.StreamSession{ID: ss.ID, ChannelID: w.ch.ID, Quality: "low", Status: contract.SessionLive}); err != nil {
			t.Errorf("CreateSession again: %v", err)
		}
		if got, _ := s.SessionByID(ctx, ss.ID); got.Quality != "high" || got.Status != contract.SessionAuthorized {
			t.Errorf("CreateSession again overwrote the session: %+v", got)
		}

		live := t0.Add(123456789 * time.Nanosecond) // sub-ms part is dropped
		end := t0.Add(time.Hour)
		steps := []struct {
			status         string
			at             time.Time
			started, ended *time.Time
		}{
			{contract.SessionLive, live, &live, nil},
			{contract.SessionEnded, end, &live, &end},
		}
		for _, st := range steps {
			if err := s.SetSessionStatus(ctx, ss.ID, st.status, st.at); err != nil {
				t.Fatalf("SetSessionStatus(%s): %v", st.status, err)
			}
			got, err := s.SessionByID(ctx, ss.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != st.status {
				t.Errorf("status %q, want %q", got.Status, st.status)
			}
			checkStamp(t, st.status+" started_at", got.StartedAt, st.started)
			checkStamp(t, st.status+" ended_at", got.EndedAt, st.ended)
		}

		lost := newSession(t, s, w.ch.ID)
		if err := s.SetSessionStatus(ctx, lost.ID, contract.SessionLost, end); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.SessionByID(ctx, lost.ID); got.Status != contract.SessionLost || got.StartedAt != nil {
			t.Errorf("lost session = %+v", got)
		} else {
			checkStamp(t, "lost ended_at", got.EndedAt, &end)
		}

		if err := s.SetSessionStatus(ctx, uuid.New(), contract.SessionLive, live); err != store.ErrNotFound {
			t.Errorf("SetSessionStatus(unknown): %v, want ErrNotFound", err)
		}
		if _, err := s.SessionByID(ctx, uuid.New()); err != store.ErrNotFound {
			t.Errorf("SessionByID(unknown): %v, want ErrNotFound", err)
		}
	})
}

func checkStamp(t *testing.T, what string, got, want *time.Time) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Errorf("%s = %s, want unset", what, fmtTime(*got))
	case want != nil && got == nil:
		t.Errorf("%s unset, want %s", what, fmtTime(*want))
	case want != nil:
		sameTime(t, what, *got, *want)
	}
}

func TestUpdateClip(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		clip := newClip(t, s, w, t0.Add(999*time.Microsecond), t0.Add(time.Minute))
		if clip.Status != contract.ClipInProgress {
			t.Errorf("new clip status %q, want in_progress", clip.Status)
		}

		updates := []store.ClipUpdate{
			{Status: contract.ClipInProgress, Progress: 0.25},
			{Status: contract.ClipFinished, Progress: 1, ObjectKey: recording.ClipKey(w.ch.ID, clip.ID)},
			{Status: contract.ClipFailed, Progress: 0.5, Error: "no recordings in range"},
		}
		for _, u := range updates {
			if err := s.UpdateClip(ctx, clip.ID, u); err != nil {
				t.Fatal(err)
			}
			for name, get := range map[string]func() (*store.Clip, error){
				"GetClip":  func() (*store.Clip, error) { return s.GetClip(ctx, w.acct.ID, clip.ID) },
				"ClipByID": func() (*store.Clip, error) { return s.ClipByID(ctx, clip.ID) },
			} {
				got, err := get()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if got.Status != u.Status || got.Progress != u.Progress || got.ObjectKey != u.ObjectKey || got.Error != u.Error {
					t.Errorf("%s after %+v: %+v", name, u, got)
				}
				sameTime(t, name+" start", got.Start, t0)
				sameTime(t, name+" end", got.End, t0.Add(time.Minute))
				if got.UpdatedAt.Before(got.CreatedAt) {
					t.Errorf("%s: updated_at %s before created_at %s", name, fmtTime(got.UpdatedAt), fmtTime(got.CreatedAt))
				}
			}
		}
		if err := s.UpdateClip(ctx, uuid.New(), updates[0]); err != store.ErrNotFound {
			t.Errorf("UpdateClip(unknown): %v, want ErrNotFound", err)
		}
		if _, err := s.ClipByID(ctx, uuid.New()); err != store.ErrNotFound {
			t.Errorf("ClipByID(unknown): %v, want ErrNotFound", err)
		}
	})
}

func TestUpdateSnapshot(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		sn := newSnapshot(t, s, w)
		if sn.Status != contract.SnapshotPending || sn.Key != recording.SnapshotKey(w.ch.ID, sn.ID) {
			t.Errorf("new snapshot: status %q key %q", sn.Status, sn.Key)
		}

		updates := []struct {
			status, contentType string
			size                int64
			errMsg              string
		}{
			{contract.SnapshotReady, "image/jpeg", 48213, ""},
			{contract.SnapshotExpired, "image/jpeg", 48213, ""},
			{contract.SnapshotFailed, "", 0, "not an image"},
		}
		for _, u := range updates {
			if err := s.UpdateSnapshot(ctx, sn.ID, u.status, u.contentType, u.size, u.errMsg); err != nil {
				t.Fatal(err)
			}
			for name, get := range map[string]func() (*store.Snapshot, error){
				"GetSnapshot":  func() (*store.Snapshot, error) { return s.GetSnapshot(ctx, w.acct.ID, sn.ID) },
				"SnapshotByID": func() (*store.Snapshot, error) { return s.SnapshotByID(ctx, sn.ID) },
			} {
				got, err := get()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if got.Status != u.status || got.ContentType != u.contentType || got.Size != u.size ||
					got.Error != u.errMsg || got.Key != sn.Key || got.Source != contract.SnapshotClient {
					t.Errorf("%s after %+v: %+v", name, u, got)
				}
			}
		}
		if err := s.UpdateSnapshot(ctx, uuid.New(), contract.SnapshotReady, "image/png", 1, ""); err != store.ErrNotFound {
			t.Errorf("UpdateSnapshot(unknown): %v, want ErrNotFound", err)
		}
		if _, err := s.SnapshotByID(ctx, uuid.New()); err != store.ErrNotFound {
			t.Errorf("SnapshotByID(unknown): %v, want ErrNotFound", err)
		}
	})
}

// TestTimesRoundTrip writes times with sub-millisecond parts and foreign
// zones and reads back the same instant, in UTC, to the millisecond. It runs
// once with the process in UTC and once in a zone east of it, as a server
// with TZ set would be: the database must not hand back local times.
func TestTimesRoundTrip(t *testing.T) {
	inputs := []struct {
		name string
		at   time.Time
	}{
		{"whole second", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"milliseconds", t0},
		{"sub-millisecond", time.Date(2025, 1, 2, 3, 4, 5, 678_901_234, time.UTC)},
		{"999 ms", time.Date(2025, 1, 2, 3, 4, 5, 999_999_999, time.UTC)},
		{"west zone", time.Date(2025, 6, 30, 22, 15, 0, 5_000_000, time.FixedZone("PDT", -7*3600))},
		{"east zone across midnight", time.Date(2025, 7, 1, 0, 30, 0, 250_000_000, time.FixedZone("IST", 5*3600+1800))},
		{"leap day", time.Date(2028, 2, 29, 23, 59, 59, 1_000_000, time.UTC)},
		{"far future", time.Date(2199, 12, 31, 23, 59, 59, 999_000_000, time.UTC)},
	}
	zones := []*time.Location{time.UTC, time.FixedZone("UTC+05:30", 5*3600+1800)}
	for _, zone := range zones {
		t.Run("local "+zone.String(), func(t *testing.T) {
			saved := time.Local
			time.Local = zone
			t.Cleanup(func() { time.Local = saved })

			storetest.Each(t, func(t *testing.T, s *store.Store) {
				ctx := context.Background()
				nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
				w := newWorld(t, s, "acme", nvr.ID)
				for _, in := range inputs {
					t.Run(in.name, func(t *testing.T) {
						var notUTC []string
						check := func(what string, got, want time.Time) {
							t.Helper()
							if want = store.UTCms(want); !got.Equal(want) {
								t.Errorf("%s = %s, want %s", what, fmtTime(got), fmtTime(want))
							}
							if _, off := got.Zone(); off != 0 {
								notUTC = append(notUTC, what+" "+fmtTime(got))
							}
						}

						ss := newSession(t, s, w.ch.ID)
						r := newRecording(w.ch.ID, ss.ID, in.at, 30*time.Second)
						if _, err := s.AddRecording(ctx, r); err != nil {
							t.Fatal(err)
						}
						recs, _, err := s.ListRecordings(ctx, w.ch.ID, in.at, in.at.Add(time.Millisecond), store.Page{Limit: 10})
						if err != nil {
							t.Fatal(err)
						}
						i := slices.IndexFunc(recs, func(x store.Recording) bool { return x.ID == r.ID })
						if i < 0 {
							t.Fatalf("ListRecordings around its start misses the recording (got %d rows)", len(recs))
						}
						check("recording start", recs[i].Start, in.at)
						check("recording end", recs[i].End, in.at.Add(30*time.Second))
						check("recording created_at", recs[i].CreatedAt, r.CreatedAt)

						clip := newClip(t, s, w, in.at, in.at.Add(time.Minute))
						c, err := s.ClipByID(ctx, clip.ID)
						if err != nil {
							t.Fatal(err)
						}
						check("clip start", c.Start, in.at)
						check("clip end", c.End, in.at.Add(time.Minute))
						check("clip created_at", c.CreatedAt, clip.CreatedAt)

						if err := s.SetSessionStatus(ctx, ss.ID, contract.SessionLive, in.at); err != nil {
							t.Fatal(err)
						}
						sess, err := s.SessionByID(ctx, ss.ID)
						if err != nil {
							t.Fatal(err)
						}
						if sess.StartedAt == nil {
							t.Fatal("session started_at unset")
						}
						check("session started_at", *sess.StartedAt, in.at)
						if len(notUTC) > 0 {
							t.Errorf("times read back in the process's zone, not UTC: %v", notUTC)
						}
					})
				}
			})
		})
	}
}

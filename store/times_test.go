package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows/contract"
)

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

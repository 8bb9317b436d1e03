package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

func TestAccountScoping(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		mine, theirs := newWorld(t, s, "mine", nvr.ID), newWorld(t, s, "theirs", nvr.ID)
		myClip, theirClip := newClip(t, s, mine, t0, t0.Add(time.Minute)), newClip(t, s, theirs, t0, t0.Add(time.Minute))
		mySnap, theirSnap := newSnapshot(t, s, mine), newSnapshot(t, s, theirs)

		getters := []struct {
			name        string
			get         func(account, id uuid.UUID) (uuid.UUID, error)
			mine, their uuid.UUID
		}{
			{"GetCamera", func(a, id uuid.UUID) (uuid.UUID, error) {
				c, err := s.GetCamera(ctx, a, id)
				return c.ID, err
			}, mine.cam.ID, theirs.cam.ID},
			{"GetChannel", func(a, id uuid.UUID) (uuid.UUID, error) {
				c, err := s.GetChannel(ctx, a, id)
				return c.ID, err
			}, mine.ch.ID, theirs.ch.ID},
			{"GetClip", func(a, id uuid.UUID) (uuid.UUID, error) {
				c, err := s.GetClip(ctx, a, id)
				return c.ID, err
			}, myClip.ID, theirClip.ID},
			{"GetSnapshot", func(a, id uuid.UUID) (uuid.UUID, error) {
				sn, err := s.GetSnapshot(ctx, a, id)
				return sn.ID, err
			}, mySnap.ID, theirSnap.ID},
		}
		for _, g := range getters {
			t.Run(g.name, func(t *testing.T) {
				cases := []struct {
					name    string
					id      uuid.UUID
					wantErr error
				}{
					{"own", g.mine, nil},
					{"another account's", g.their, store.ErrNotFound},
					{"unknown", uuid.New(), store.ErrNotFound},
				}
				for _, tc := range cases {
					got, err := g.get(mine.acct.ID, tc.id)
					if err != tc.wantErr {
						t.Errorf("%s id: err %v, want %v", tc.name, err, tc.wantErr)
					}
					if err == nil && got != tc.id {
						t.Errorf("%s id: got %s, want %s", tc.name, got, tc.id)
					}
				}
			})
		}

		cams, _, err := s.ListCameras(ctx, mine.acct.ID, store.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(cams, func(c store.Camera) uuid.UUID { return c.ID }); !equalIDs(got, []uuid.UUID{mine.cam.ID}) {
			t.Errorf("ListCameras = %v, want only %s", got, mine.cam.ID)
		}
		chans, _, err := s.ListChannels(ctx, mine.acct.ID, store.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(chans, func(c store.Channel) uuid.UUID { return c.ID }); !equalIDs(got, []uuid.UUID{mine.ch.ID}) {
			t.Errorf("ListChannels = %v, want only %s", got, mine.ch.ID)
		}

		// Writing another account's camera is refused and changes nothing.
		hijack := *theirs.cam
		hijack.AccountID, hijack.Name = mine.acct.ID, "hijacked"
		if err := s.UpdateCamera(ctx, &hijack); err != store.ErrNotFound {
			t.Errorf("UpdateCamera of another account's camera: %v, want ErrNotFound", err)
		}
		if c, _ := s.GetCamera(ctx, theirs.acct.ID, theirs.cam.ID); c.Name != "theirs-cam" || c.AccountID != theirs.acct.ID {
			t.Errorf("another account's camera changed: %+v", c)
		}
	})
}

func TestUpdateCamera(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := newAccount(t, s, "acme")
		c := newCamera(t, s, a.ID, "door")
		c.Name, c.Port, c.PTZ, c.StreamMid = "gate", 8554, true, "/mid"
		if err := s.UpdateCamera(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetCamera(ctx, a.ID, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "gate" || got.Port != 8554 || !got.PTZ || got.StreamMid != "/mid" || got.Password != "secret" {
			t.Errorf("after update: %+v", got)
		}
		sameTime(t, "created_at", got.CreatedAt, c.CreatedAt)
		sameTime(t, "updated_at", got.UpdatedAt, c.UpdatedAt)
		if got.UpdatedAt.Before(got.CreatedAt) {
			t.Error("updated_at before created_at")
		}
	})
}

// lister pages through one account's rows of some kind.
type lister struct {
	name   string
	create func(t *testing.T, s *store.Store, account uuid.UUID, cam *store.Camera, nvr uuid.UUID) uuid.UUID
	list   func(s *store.Store, account uuid.UUID, p store.Page) ([]uuid.UUID, string, error)
}

var listers = []lister{
	{
		name: "ListCameras",
		create: func(t *testing.T, s *store.Store, account uuid.UUID, _ *store.Camera, _ uuid.UUID) uuid.UUID {
			return newCamera(t, s, account, "cam").ID
		},
		list: func(s *store.Store, account uuid.UUID, p store.Page) ([]uuid.UUID, string, error) {
			rows, next, err := s.ListCameras(context.Background(), account, p)
			return ids(rows, func(c store.Camera) uuid.UUID { return c.ID }), next, err
		},
	},
	{
		name: "ListChannels",
		create: func(t *testing.T, s *store.Store, account uuid.UUID, cam *store.Camera, nvr uuid.UUID) uuid.UUID {
			return newChannel(t, s, account, cam.ID, nvr).ID
		},
		list: func(s *store.Store, account uuid.UUID, p store.Page) ([]uuid.UUID, string, error) {
			rows, next, err := s.ListChannels(context.Background(), account, p)
			return ids(rows, func(c store.Channel) uuid.UUID { return c.ID }), next, err
		},
	},
}

func TestListPaging(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		nvr := newNVR(t, s, "nvr-1", 100, store.NVRActive)
		for _, l := range listers {
			t.Run(l.name, func(t *testing.T) {
				mine, theirs := newAccount(t, s, "mine"), newAccount(t, s, "theirs")
				myCam, theirCam := newCamera(t, s, mine.ID, "c"), newCamera(t, s, theirs.ID, "c")
				var want []uuid.UUID
				for i := range 5 {
					want = append(want, l.create(t, s, mine.ID, myCam, nvr.ID))
					if i%2 == 0 { // interleave another account's rows
						l.create(t, s, theirs.ID, theirCam, nvr.ID)
					}
				}
				if l.name == "ListCameras" {
					want = append([]uuid.UUID{myCam.ID}, want...)
				}
				slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })

				cases := []struct {
					limit int
					pages []int
				}{
					{1, repeat(1, len(want))},
					{2, pageSizes(len(want), 2)},
					{len(want) - 1, []int{len(want) - 1, 1}},
					{len(want), []int{len(want)}},
					{len(want) + 5, []int{len(want)}},
				}
				for _, tc := range cases {
					t.Run(fmt.Sprintf("limit %d", tc.limit), func(t *testing.T) {
						var got []uuid.UUID
						var sizes []int
						cursor := ""
						for range 20 {
							page, next, err := l.list(s, mine.ID, store.Page{Limit: tc.limit, Cursor: cursor})
							if err != nil {
								t.Fatal(err)
							}
							got, sizes = append(got, page...), append(sizes, len(page))
							if next == "" {
								break
							}
							cursor = next
						}
						if !slices.Equal(sizes, tc.pages) {
							t.Errorf("page sizes %v, want %v", sizes, tc.pages)
						}
						if !equalIDs(got, want) {
							t.Errorf("paged ids\n got %v\nwant %v", got, want)
						}
					})
				}

				t.Run("bad cursor", func(t *testing.T) {
					for _, c := range []string{"not-a-cursor", "1234", "../etc"} {
						if _, _, err := l.list(s, mine.ID, store.Page{Limit: 2, Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
							t.Errorf("cursor %q: err %v, want ErrBadCursor", c, err)
						}
					}
				})
			})
		}
	})
}

// TestListNonPositiveLimit: a Page without a limit (or a negative one) must
// not crash the process; it should fall back to a default page size.
func TestListNonPositiveLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		nvr := newNVR(t, s, "nvr-1", 100, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		newCamera(t, s, w.acct.ID, "second")
		sess := newSession(t, s, w.ch.ID)
		addRecording(t, s, w.ch.ID, sess.ID, t0, 30*time.Second)
		addRecording(t, s, w.ch.ID, sess.ID, t0.Add(30*time.Second), 30*time.Second)

		calls := map[string]func(p store.Page) (int, error){
			"ListCameras": func(p store.Page) (int, error) {
				rows, _, err := s.ListCameras(context.Background(), w.acct.ID, p)
				return len(rows), err
			},
			"ListChannels": func(p store.Page) (int, error) {
				rows, _, err := s.ListChannels(context.Background(), w.acct.ID, p)
				return len(rows), err
			},
			"ListRecordings": func(p store.Page) (int, error) {
				rows, _, err := s.ListRecordings(context.Background(), w.ch.ID, t0, t0.Add(time.Hour), p)
				return len(rows), err
			},
		}
		for _, name := range []string{"ListCameras", "ListChannels", "ListRecordings"} {
			for _, limit := range []int{0, -1} {
				t.Run(fmt.Sprintf("%s limit %d", name, limit), func(t *testing.T) {
					defer func() {
						if r := recover(); r != nil {
							t.Errorf("panicked: %v", r)
						}
					}()
					n, err := calls[name](store.Page{Limit: limit})
					if err != nil {
						t.Errorf("err %v", err)
					}
					if n == 0 {
						t.Error("returned no rows")
					}
				})
			}
		}
	})
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func pageSizes(total, limit int) []int {
	var out []int
	for total > 0 {
		n := min(total, limit)
		out = append(out, n)
		total -= n
	}
	return out
}

func TestDeleteCamera(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		other := newAccount(t, s, "other")

		steps := []struct {
			name    string
			do      func() error
			wantErr error
			cameras int // acme's cameras afterwards
		}{
			{"camera with a channel", func() error { return s.DeleteCamera(ctx, w.acct.ID, w.cam.ID) }, store.ErrConflict, 1},
			{"another account's camera", func() error { return s.DeleteCamera(ctx, other.ID, w.cam.ID) }, store.ErrNotFound, 1},
			{"another account's channel", func() error { return s.DeleteChannel(ctx, other.ID, w.ch.ID) }, store.ErrNotFound, 1},
			{"unknown camera", func() error { return s.DeleteCamera(ctx, w.acct.ID, uuid.New()) }, store.ErrNotFound, 1},
			{"the channel", func() error { return s.DeleteChannel(ctx, w.acct.ID, w.ch.ID) }, nil, 1},
			{"the channel again", func() error { return s.DeleteChannel(ctx, w.acct.ID, w.ch.ID) }, store.ErrNotFound, 1},
			{"camera without channels", func() error { return s.DeleteCamera(ctx, w.acct.ID, w.cam.ID) }, nil, 0},
			{"camera again", func() error { return s.DeleteCamera(ctx, w.acct.ID, w.cam.ID) }, store.ErrNotFound, 0},
		}
		for _, st := range steps {
			if err := st.do(); !errors.Is(err, st.wantErr) {
				t.Errorf("delete %s: err %v, want %v", st.name, err, st.wantErr)
			}
			if n := count(t, s, "cameras", "account_id = ?", w.acct.ID); n != st.cameras {
				t.Errorf("after delete %s: %d cameras, want %d", st.name, n, st.cameras)
			}
			if st.wantErr == store.ErrConflict {
				if _, err := s.GetChannel(ctx, w.acct.ID, w.ch.ID); err != nil {
					t.Errorf("after refused delete %s the channel is gone: %v", st.name, err)
				}
			}
		}
	})
}

func TestDeleteChannelCascades(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		doomed := newWorld(t, s, "acme", nvr.ID)
		// A sibling channel on the same camera keeps all its rows.
		kept := world{acct: doomed.acct, cam: doomed.cam, ch: newChannel(t, s, doomed.acct.ID, doomed.cam.ID, nvr.ID)}
		other := newAccount(t, s, "other")

		fill := func(w world) *store.Clip {
			sess := newSession(t, s, w.ch.ID)
			var recs []uuid.UUID
			for i := range 3 {
				recs = append(recs, addRecording(t, s, w.ch.ID, sess.ID, t0.Add(time.Duration(i)*30*time.Second), 30*time.Second).ID)
			}
			clip := newClip(t, s, w, t0, t0.Add(90*time.Second))
			if _, err := s.AppendClipSegments(ctx, clip.ID, recs); err != nil {
				t.Fatal(err)
			}
			newSnapshot(t, s, w)
			newSnapshot(t, s, w)
			return clip
		}
		doomedClip, keptClip := fill(doomed), fill(kept)

		rows := func(w world, clip *store.Clip) map[string]int {
			return map[string]int{
				"stream_sessions": count(t, s, "stream_sessions", "channel_id = ?", w.ch.ID),
				"recordings":      count(t, s, "recordings", "channel_id = ?", w.ch.ID),
				"clips":           count(t, s, "clips", "channel_id = ?", w.ch.ID),
				"clip_segments":   count(t, s, "clip_segments", "clip_id = ?", clip.ID),
				"snapshots":       count(t, s, "snapshots", "channel_id = ?", w.ch.ID),
				"channels":        count(t, s, "channels", "id = ?", w.ch.ID),
			}
		}
		full := map[string]int{"stream_sessions": 1, "recordings": 3, "clips": 1, "clip_segments": 3, "snapshots": 2, "channels": 1}
		empty := map[string]int{"stream_sessions": 0, "recordings": 0, "clips": 0, "clip_segments": 0, "snapshots": 0, "channels": 0}

		steps := []struct {
			name             string
			account          uuid.UUID
			wantErr          error
			doomedRows, kept map[string]int
		}{
			{"by another account", other.ID, store.ErrNotFound, full, full},
			{"by its account", doomed.acct.ID, nil, empty, full},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				if err := s.DeleteChannel(ctx, st.account, doomed.ch.ID); !errors.Is(err, st.wantErr) {
					t.Errorf("DeleteChannel: err %v, want %v", err, st.wantErr)
				}
				if got := rows(doomed, doomedClip); !mapsEqual(got, st.doomedRows) {
					t.Errorf("deleted channel's rows: %v, want %v", got, st.doomedRows)
				}
				if got := rows(kept, keptClip); !mapsEqual(got, st.kept) {
					t.Errorf("sibling channel's rows: %v, want %v", got, st.kept)
				}
			})
		}
		if n := count(t, s, "cameras", "id = ?", doomed.cam.ID); n != 1 {
			t.Error("DeleteChannel deleted the camera")
		}
	})
}

func mapsEqual(a, b map[string]int) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestCreateChannelPlacement(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := newAccount(t, s, "acme")
		cam := newCamera(t, s, a.ID, "door")
		create := func(nvr uuid.UUID) (*store.Channel, error) {
			c := &store.Channel{AccountID: a.ID, CameraID: cam.ID, NVRID: nvr, RetentionDays: 3}
			return c, s.CreateChannel(ctx, c)
		}

		if _, err := create(uuid.Nil); err != store.ErrNoCapacity {
			t.Errorf("no NVRs at all: err %v, want ErrNoCapacity", err)
		}
		small := newNVR(t, s, "small", 2, store.NVRActive)
		big := newNVR(t, s, "big", 3, store.NVRActive)
		draining := newNVR(t, s, "draining", 100, store.NVRDraining)
		name := map[uuid.UUID]string{small.ID: "small", big.ID: "big", draining.ID: "draining"}

		// Each channel goes to the active NVR with the most free slots; ties
		// go to the older NVR. The draining one is never picked.
		for i, want := range []string{"big", "small", "big", "small", "big"} {
			c, err := create(uuid.Nil)
			if err != nil {
				t.Fatalf("channel %d: %v", i+1, err)
			}
			if name[c.NVRID] != want {
				t.Errorf("channel %d placed on %s, want %s", i+1, name[c.NVRID], want)
			}
			if c.Status != store.ChannelActive {
				t.Errorf("channel %d status %q, want active", i+1, c.Status)
			}
		}
		if _, err := create(uuid.Nil); err != store.ErrNoCapacity {
			t.Errorf("all active NVRs full: err %v, want ErrNoCapacity", err)
		}
		if _, err := create(uuid.New()); err != store.ErrNotFound {
			t.Errorf("named unknown NVR: err %v, want ErrNotFound", err)
		}
		if n := count(t, s, "channels", ""); n != 5 {
			t.Errorf("%d channels after refused creates, want 5", n)
		}
		// Naming an NVR is an operator's explicit choice.
		if c, err := create(draining.ID); err != nil || c.NVRID != draining.ID {
			t.Errorf("named NVR: %v on %s", err, name[c.NVRID])
		}

		nvrs, err := s.ListNVRs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		load := map[string]int{}
		for _, n := range nvrs {
			load[n.Name] = n.Channels
		}
		if want := map[string]int{"small": 2, "big": 3, "draining": 1}; !mapsEqual(load, want) {
			t.Errorf("ListNVRs channel counts %v, want %v", load, want)
		}
		n, err := s.GetNVR(ctx, big.ID)
		if err != nil || n.Channels != 3 || n.Capacity != 3 || n.Name != "big" {
			t.Errorf("GetNVR(big) = %+v, %v", n, err)
		}
		if _, err := s.GetNVR(ctx, uuid.New()); err != store.ErrNotFound {
			t.Errorf("GetNVR(unknown): %v, want ErrNotFound", err)
		}
	})
}

func TestUpsertNVR(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		first := &store.NVR{Name: "worker-1", MediaURL: "ws://10.0.0.1:8082", Capacity: 50}
		if err := s.UpsertNVR(ctx, first); err != nil {
			t.Fatal(err)
		}
		if first.Status != store.NVRActive {
			t.Errorf("new NVR status %q, want active", first.Status)
		}
		newNVR(t, s, "worker-2", 10, store.NVRActive)

		restarts := []struct {
			name      string
			url       string
			capacity  int
			setStatus string // operator's change before the restart
			want      string // status after the restart
		}{
			{"moved", "ws://10.0.0.9:8082", 80, "", store.NVRActive},
			{"restarted while draining", "ws://10.0.0.9:8082", 80, store.NVRDraining, store.NVRDraining},
		}
		for _, rs := range restarts {
			t.Run(rs.name, func(t *testing.T) {
				if rs.setStatus != "" {
					if _, err := s.DB.NewUpdate().Model((*store.NVR)(nil)).Set("status = ?", rs.setStatus).
						Where("id = ?", first.ID).Exec(ctx); err != nil {
						t.Fatal(err)
					}
				}
				again := &store.NVR{Name: "worker-1", MediaURL: rs.url, Capacity: rs.capacity}
				if err := s.UpsertNVR(ctx, again); err != nil {
					t.Fatal(err)
				}
				if again.ID != first.ID {
					t.Errorf("upsert returned id %s, want the first %s", again.ID, first.ID)
				}
				sameTime(t, "returned created_at", again.CreatedAt, first.CreatedAt)
				got, err := s.GetNVR(ctx, first.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.MediaURL != rs.url || got.Capacity != rs.capacity {
					t.Errorf("after upsert: url %q capacity %d, want %q %d", got.MediaURL, got.Capacity, rs.url, rs.capacity)
				}
				if got.Status != rs.want {
					t.Errorf("after upsert: status %q, want %q", got.Status, rs.want)
				}
				if n := count(t, s, "nvrs", ""); n != 2 {
					t.Errorf("%d nvrs, want 2", n)
				}
			})
		}
	})
}

// TestCreateChannelConcurrent: channels created at once never overfill an NVR.
func TestCreateChannelConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := newAccount(t, s, "acme")
		cam := newCamera(t, s, a.ID, "door")
		newNVR(t, s, "nvr-1", 3, store.NVRActive)
		newNVR(t, s, "nvr-2", 2, store.NVRActive)

		const tries = 12
		errs := make([]error, tries)
		var wg sync.WaitGroup
		for i := range tries {
			wg.Go(func() {
				errs[i] = s.CreateChannel(ctx, &store.Channel{AccountID: a.ID, CameraID: cam.ID})
			})
		}
		wg.Wait()
		created, full := 0, 0
		for _, err := range errs {
			switch err {
			case nil:
				created++
			case store.ErrNoCapacity:
				full++
			default:
				t.Errorf("CreateChannel: %v", err)
			}
		}
		if created != 5 || full != tries-5 {
			t.Errorf("%d created, %d ErrNoCapacity; want 5 and %d", created, full, tries-5)
		}
		nvrs, err := s.ListNVRs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nvrs {
			if n.Channels != n.Capacity {
				t.Errorf("%s has %d channels, capacity %d", n.Name, n.Channels, n.Capacity)
			}
		}
	})
}

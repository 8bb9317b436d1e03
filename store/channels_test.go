package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

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

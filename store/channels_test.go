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
	"github.com/opennvr/vms/workflows/contract"
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

func TestChannelRecordingSettingsAndState(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		other := newAccount(t, s, "other")

		got, err := s.GetChannel(ctx, w.acct.ID, w.ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Recording != contract.RecordingContinuous || got.RecordQuality != "high" || got.StateStatus != contract.StateStarting {
			t.Errorf("new channel: recording %q quality %q state %q, want continuous high starting",
				got.Recording, got.RecordQuality, got.StateStatus)
		}
		if got.StateSince == nil {
			t.Fatal("new channel has no state_since")
		}
		sameTime(t, "new channel's state_since", *got.StateSince, got.CreatedAt)
		if got.LastSegmentEnd != nil {
			t.Errorf("channel without recordings: last segment end %v", got.LastSegmentEnd)
		}
		off := &store.Channel{AccountID: w.acct.ID, CameraID: w.cam.ID, NVRID: nvr.ID, Recording: contract.RecordingOff}
		if err := s.CreateChannel(ctx, off); err != nil {
			t.Fatal(err)
		}
		if off.StateStatus != contract.StateOff {
			t.Errorf("channel created off: state %q, want off", off.StateStatus)
		}

		// The owner's settings change; nothing else does.
		change := *got
		change.Recording, change.RecordQuality, change.RetentionDays = contract.RecordingOff, "low", 9
		change.NVRID, change.StateStatus = uuid.New(), contract.StateRecording
		if err := s.UpdateChannel(ctx, &change); err != nil {
			t.Fatal(err)
		}
		stranger := change
		stranger.AccountID = other.ID
		if err := s.UpdateChannel(ctx, &stranger); err != store.ErrNotFound {
			t.Errorf("UpdateChannel from another account: %v, want ErrNotFound", err)
		}
		if got, err = s.GetChannel(ctx, w.acct.ID, w.ch.ID); err != nil {
			t.Fatal(err)
		}
		if got.Recording != contract.RecordingOff || got.RecordQuality != "low" || got.RetentionDays != 9 {
			t.Errorf("after update: %q %q %d, want off low 9", got.Recording, got.RecordQuality, got.RetentionDays)
		}
		if got.NVRID != nvr.ID || got.StateStatus != contract.StateStarting {
			t.Errorf("UpdateChannel changed nvr %s or state %q", got.NVRID, got.StateStatus)
		}

		// The supervisor's reports.
		states := []struct {
			status string
			since  time.Time
			err    string
		}{
			{contract.StateRecording, t0, ""},
			{contract.StateRetrying, t0.Add(time.Minute), "camera refused the connection"},
			{contract.StateRecording, t0.Add(2 * time.Minute), ""},
		}
		for _, st := range states {
			if err := s.SetChannelState(ctx, w.ch.ID, store.ChannelState{Status: st.status, Since: st.since, LastError: st.err}); err != nil {
				t.Fatal(err)
			}
			got, err := s.ChannelByID(ctx, w.ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.StateStatus != st.status || got.StateError != st.err || got.StateSince == nil {
				t.Fatalf("state %q %v %q, want %q %q", got.StateStatus, got.StateSince, got.StateError, st.status, st.err)
			}
			sameTime(t, "state_since", *got.StateSince, st.since)
		}
		if err := s.SetChannelState(ctx, uuid.New(), store.ChannelState{Status: contract.StateOff, Since: t0}); err != store.ErrNotFound {
			t.Errorf("SetChannelState(unknown channel): %v, want ErrNotFound", err)
		}
	})
}

// TestChannelLastSegmentEnd: reads of channels carry the end of each
// channel's newest recording, whatever session it came from.
func TestChannelLastSegmentEnd(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		quiet := newChannel(t, s, w.acct.ID, w.cam.ID, nvr.ID)
		busy := newChannel(t, s, w.acct.ID, w.cam.ID, nvr.ID)
		first, second := newSession(t, s, w.ch.ID), newSession(t, s, w.ch.ID)
		addRecording(t, s, w.ch.ID, first.ID, t0, 30*time.Second)
		addRecording(t, s, w.ch.ID, second.ID, t0.Add(time.Hour), 20*time.Second)
		addRecording(t, s, w.ch.ID, first.ID, t0.Add(30*time.Second), 30*time.Second)
		other := newSession(t, s, busy.ID)
		addRecording(t, s, busy.ID, other.ID, t0.Add(2*time.Hour), 10*time.Second)
		want := map[uuid.UUID]time.Time{w.ch.ID: t0.Add(time.Hour + 20*time.Second), busy.ID: t0.Add(2*time.Hour + 10*time.Second)}

		check := func(c *store.Channel) {
			t.Helper()
			end, has := want[c.ID]
			switch {
			case !has && c.LastSegmentEnd != nil:
				t.Errorf("channel %s without recordings: last segment end %s", c.ID, fmtTime(*c.LastSegmentEnd))
			case has && c.LastSegmentEnd == nil:
				t.Errorf("channel %s: no last segment end, want %s", c.ID, fmtTime(end))
			case has:
				sameTime(t, "last segment end", *c.LastSegmentEnd, end)
			}
		}
		for _, id := range []uuid.UUID{w.ch.ID, quiet.ID, busy.ID} {
			c, err := s.GetChannel(ctx, w.acct.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			check(c)
		}
		seen := 0
		for cursor := ""; ; {
			page, next, err := s.ListChannels(ctx, w.acct.ID, store.Page{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for i := range page {
				check(&page[i])
				seen++
			}
			if cursor = next; cursor == "" {
				break
			}
		}
		if seen != 3 {
			t.Errorf("listed %d channels, want 3", seen)
		}
	})
}

// TestMoveChannel: a channel leaves a draining or silent NVR for the
// healthy NVR with the most free capacity, and stays on a healthy one.
func TestMoveChannel(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := newAccount(t, s, "acme")
		cam := newCamera(t, s, a.ID, "door")
		staleBefore := time.Now().Add(-30 * time.Second)
		seen := func(n *store.NVR, at time.Time) {
			t.Helper()
			if _, err := s.DB.NewUpdate().Model((*store.NVR)(nil)).Set("last_seen_at = ?", store.UTCms(at)).
				Where("id = ?", n.ID).Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		small := newNVR(t, s, "small", 2, store.NVRActive)
		big := newNVR(t, s, "big", 3, store.NVRActive)
		silent := newNVR(t, s, "silent", 100, store.NVRActive)
		never := newNVR(t, s, "never", 100, store.NVRActive)
		draining := newNVR(t, s, "draining", 100, store.NVRDraining)
		for _, n := range []*store.NVR{small, big, draining} {
			if _, err := s.TouchNVR(ctx, n.ID); err != nil {
				t.Fatal(err)
			}
		}
		seen(silent, staleBefore.Add(-time.Second))
		name := map[uuid.UUID]string{small.ID: "small", big.ID: "big", silent.ID: "silent", never.ID: "never", draining.ID: "draining"}
		on := func(n *store.NVR) *store.Channel { return newChannel(t, s, a.ID, cam.ID, n.ID) }

		moves := []struct {
			name  string
			from  *store.NVR
			moved bool
			to    string
		}{
			{"healthy stays", small, false, "small"},
			{"silent moves to the most free", silent, true, "big"},
			{"never seen moves", never, true, "big"},
			{"draining moves; ties go to the older", draining, true, "small"},
			{"takes the last free slot", silent, true, "big"},
		}
		for _, m := range moves {
			t.Run(m.name, func(t *testing.T) {
				ch := on(m.from)
				moved, to, err := s.MoveChannel(ctx, ch.ID, staleBefore)
				if err != nil || moved != m.moved || name[to] != m.to {
					t.Fatalf("MoveChannel = %v %s %v, want %v %s", moved, name[to], err, m.moved, m.to)
				}
				got, err := s.ChannelByID(ctx, ch.ID)
				if err != nil || got.NVRID != to {
					t.Fatalf("channel is on %s (%v), want %s", name[got.NVRID], err, m.to)
				}
			})
		}
		// small and big are full now: a channel on a dead NVR has nowhere to go.
		stuck := on(silent)
		if moved, _, err := s.MoveChannel(ctx, stuck.ID, staleBefore); err != store.ErrNoCapacity || moved {
			t.Errorf("no healthy NVR with room: moved %v, err %v, want ErrNoCapacity", moved, err)
		}
		if got, _ := s.ChannelByID(ctx, stuck.ID); got.NVRID != silent.ID {
			t.Errorf("refused move left the channel on %s", name[got.NVRID])
		}
		if _, _, err := s.MoveChannel(ctx, uuid.New(), staleBefore); err != store.ErrNotFound {
			t.Errorf("MoveChannel(unknown): %v, want ErrNotFound", err)
		}
	})
}

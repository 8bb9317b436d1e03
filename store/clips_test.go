package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows/contract"
)

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

package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

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

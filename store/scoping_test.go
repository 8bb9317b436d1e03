package store_test

import (
	"context"
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

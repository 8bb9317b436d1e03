package store_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows/contract"
)

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

package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

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

func TestNVRHealth(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		n := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		if got, _ := s.GetNVR(ctx, n.ID); got.LastSeenAt != nil {
			t.Errorf("new NVR last seen %v, want never", got.LastSeenAt)
		}
		before := time.Now()
		at, err := s.TouchNVR(ctx, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("TouchNVR stamped %s, not now", fmtTime(at))
		}
		got, err := s.GetNVR(ctx, n.ID)
		if err != nil || got.LastSeenAt == nil {
			t.Fatalf("after TouchNVR: %+v %v", got, err)
		}
		sameTime(t, "last_seen_at", *got.LastSeenAt, at)
		if _, err := s.TouchNVR(ctx, uuid.New()); err != store.ErrNotFound {
			t.Errorf("TouchNVR(unknown): %v, want ErrNotFound", err)
		}

		for _, status := range []string{store.NVRDraining, store.NVRActive} {
			got, err := s.SetNVRStatus(ctx, n.ID, status)
			if err != nil || got.Status != status || got.ID != n.ID {
				t.Fatalf("SetNVRStatus(%s) = %+v, %v", status, got, err)
			}
		}
		if _, err := s.SetNVRStatus(ctx, uuid.New(), store.NVRDraining); err != store.ErrNotFound {
			t.Errorf("SetNVRStatus(unknown): %v, want ErrNotFound", err)
		}
	})
}

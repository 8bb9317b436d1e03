package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

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

package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows/contract"
)

// TestChannelState: a new channel starts in "starting" (or "off"), the
// supervisor's reports are stored, and /metrics' counts add them up.
func TestChannelState(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		w := storetest.NewWorld(t, s)
		if w.Channel.Recording != contract.RecordingContinuous || w.Channel.RecordQuality != "high" ||
			w.Channel.StateStatus != contract.StateStarting || w.Channel.StateSince == nil {
			t.Fatalf("new channel: recording %q, quality %q, state %q since %v", w.Channel.Recording,
				w.Channel.RecordQuality, w.Channel.StateStatus, w.Channel.StateSince)
		}
		off := &store.Channel{AccountID: w.Account.ID, CameraID: w.Camera.ID, NVRID: w.NVR.ID, RetentionDays: 1,
			Recording: contract.RecordingOff}
		if err := s.CreateChannel(ctx, off); err != nil {
			t.Fatal(err)
		}
		if off.StateStatus != contract.StateOff {
			t.Fatalf("channel created off: state %q", off.StateStatus)
		}

		st := store.ChannelState{Status: contract.StateRetrying, Since: t0, LastError: "connection refused", Restarts: 3}
		if err := s.SetChannelState(ctx, w.Channel.ID, st); err != nil {
			t.Fatal(err)
		}
		got, err := s.ChannelByID(ctx, w.Channel.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.StateStatus != st.Status || got.StateSince == nil || !got.StateSince.Equal(t0) ||
			got.StateError != st.LastError || got.StateRestarts != 3 {
			t.Fatalf("stored state %q since %v error %q restarts %d, want %+v", got.StateStatus, got.StateSince,
				got.StateError, got.StateRestarts, st)
		}
		if err := s.SetChannelState(ctx, uuid.New(), st); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("state of a missing channel: %v, want ErrNotFound", err)
		}

		counts, restarts, err := s.ChannelStateCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[contract.StateRetrying] != 1 || counts[contract.StateOff] != 1 || restarts != 3 {
			t.Fatalf("counts %v, restarts %d; want one retrying, one off, 3 restarts", counts, restarts)
		}

		ids, err := s.ChannelIDs(ctx, uuid.Nil, 1)
		if err != nil || len(ids) != 1 || ids[0] != w.Channel.ID {
			t.Fatalf("first channel id page: %v %v", ids, err)
		}
		if ids, err = s.ChannelIDs(ctx, ids[0], 10); err != nil || len(ids) != 1 || ids[0] != off.ID {
			t.Fatalf("second channel id page: %v %v", ids, err)
		}
	})
}

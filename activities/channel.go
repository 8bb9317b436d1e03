package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows/contract"
)

// RecordingTarget is what a channel's supervisor needs to know to record
// the channel: its desired mode and quality, and who pulls its camera.
type RecordingTarget struct {
	// Exists is false once the channel was deleted.
	Exists   bool
	Mode     string // contract.Recording*
	Quality  string
	CameraID string
	// AgentID is the camera's agent; empty when the camera has none.
	AgentID string
	NVRID   string
	// Moved: the channel was just moved off a dead or draining NVR, so a
	// stream on the old one must be restarted on NVRID.
	Moved bool
	// Problem says why the channel cannot record as configured (no agent,
	// no stream of the chosen quality); empty when it can.
	Problem string
}

// ReadRecordingTarget reads a channel's recording configuration. A channel
// whose NVR is draining, or whose media worker has been silent for
// NVRStaleAfter, is first moved to the healthy NVR with the most room (it
// stays where it is when there is none).
func (a *Activities) ReadRecordingTarget(ctx context.Context, channelID string) (RecordingTarget, error) {
	id, err := parseID("channel", channelID)
	if err != nil {
		return RecordingTarget{}, err
	}
	moved, _, err := a.Store.MoveChannel(ctx, id, time.Now().Add(-a.nvrStaleAfter()))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return RecordingTarget{}, nil
	case errors.Is(err, store.ErrNoCapacity):
		logger(ctx).Warn("channel's NVR is unhealthy and no other has room", "channel", channelID)
	case err != nil:
		return RecordingTarget{}, fmt.Errorf("move channel: %w", err)
	case moved:
		logger(ctx).Info("channel moved off an unhealthy NVR", "channel", channelID)
	}
	ch, err := a.Store.ChannelByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return RecordingTarget{}, nil
	}
	if err != nil {
		return RecordingTarget{}, fmt.Errorf("read channel: %w", err)
	}
	t := RecordingTarget{Exists: true, Mode: ch.Recording, Quality: ch.RecordQuality,
		CameraID: ch.CameraID.String(), NVRID: ch.NVRID.String(), Moved: moved}
	if ch.Status != store.ChannelActive {
		t.Mode = contract.RecordingOff
	}
	cam, err := a.Store.GetCamera(ctx, ch.AccountID, ch.CameraID)
	if err != nil {
		return RecordingTarget{}, fmt.Errorf("read camera: %w", err)
	}
	if cam.AgentID != nil {
		t.AgentID = cam.AgentID.String()
	}
	switch path, known := cam.StreamPath(t.Quality); {
	case t.AgentID == "":
		t.Problem = "the camera has no agent to pull it"
	case !known || path == "":
		t.Problem = fmt.Sprintf("the camera has no %s stream", t.Quality)
	}
	return t, nil
}

// RecordingStateInput is a channel supervisor's new state.
type RecordingStateInput struct {
	ChannelID string
	State     contract.RecordingState
}

// SetRecordingState stores a channel supervisor's state, for the API to
// show. A deleted channel has no state to keep: no error.
func (a *Activities) SetRecordingState(ctx context.Context, in RecordingStateInput) error {
	id, err := parseID("channel", in.ChannelID)
	if err != nil {
		return err
	}
	err = a.Store.SetChannelState(ctx, id, store.ChannelState{Status: in.State.Status, Since: in.State.Since,
		LastError: in.State.LastError, Restarts: in.State.Restarts})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (a *Activities) nvrStaleAfter() time.Duration {
	if a.NVRStaleAfter > 0 {
		return a.NVRStaleAfter
	}
	return recording.NVRStaleAfter
}

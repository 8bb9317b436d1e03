package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"

	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows/contract"
)

// CheckChannel fails with a non-retryable ErrChannelInactive unless the
// channel exists and is active.
func (a *Activities) CheckChannel(ctx context.Context, channelID string) error {
	id, err := parseID("channel", channelID)
	if err != nil {
		return err
	}
	ch, err := a.Store.ChannelByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return permanent(ErrChannelInactive, "channel %s does not exist", channelID)
	}
	if err != nil {
		return fmt.Errorf("read channel: %w", err)
	}
	if ch.Status != store.ChannelActive {
		return permanent(ErrChannelInactive, "channel %s is %s", channelID, ch.Status)
	}
	return nil
}

// CreateSessionInput names a stream session being authorized.
type CreateSessionInput struct {
	SessionID string
	ChannelID string
	Quality   string
	Worker    string
}

// CreateSession inserts the authorized session row (idempotent on its id).
func (a *Activities) CreateSession(ctx context.Context, in CreateSessionInput) error {
	sid, err := parseID("session", in.SessionID)
	if err != nil {
		return err
	}
	cid, err := parseID("channel", in.ChannelID)
	if err != nil {
		return err
	}
	err = a.Store.CreateSession(ctx, &store.StreamSession{ID: sid, ChannelID: cid, Quality: in.Quality, Worker: in.Worker})
	if err != nil {
		return a.channelGone(ctx, cid, err)
	}
	return nil
}

// SessionStatusInput moves a session to Status at At.
type SessionStatusInput struct {
	SessionID string
	Status    string // contract.SessionLive, SessionEnded or SessionLost
	At        time.Time
}

// SetSessionStatus records a session's new status and when it changed.
func (a *Activities) SetSessionStatus(ctx context.Context, in SessionStatusInput) error {
	id, err := parseID("session", in.SessionID)
	if err != nil {
		return err
	}
	err = a.Store.SetSessionStatus(ctx, id, in.Status, in.At)
	if errors.Is(err, store.ErrNotFound) {
		return permanent(ErrSessionDeleted, "session %s was deleted", in.SessionID)
	}
	return err
}

// RecordSegmentInput is one uploaded segment of a session.
type RecordSegmentInput struct {
	SessionID string
	ChannelID string
	recording.SegmentReport
}

// RecordSegmentResult says which recording row holds the segment, and
// whether this call created it (false: a re-delivered report).
type RecordSegmentResult struct {
	RecordingID string
	Created     bool
}

// RecordSegment stores a segment's recording row, idempotently on its S3
// key.
func (a *Activities) RecordSegment(ctx context.Context, in RecordSegmentInput) (RecordSegmentResult, error) {
	sid, err := parseID("session", in.SessionID)
	if err != nil {
		return RecordSegmentResult{}, err
	}
	cid, err := parseID("channel", in.ChannelID)
	if err != nil {
		return RecordSegmentResult{}, err
	}
	if in.Key == "" || !in.Start.Before(in.End) || in.Size < 0 {
		return RecordSegmentResult{}, permanent(ErrBadInput, "segment %q needs a key, start < end and a size", in.Key)
	}
	durMS := in.DurationMS
	if durMS <= 0 {
		durMS = in.End.Sub(in.Start).Milliseconds()
	}
	r := &store.Recording{
		ChannelID: cid, SessionID: sid, Key: in.Key, Start: in.Start, End: in.End,
		DurationMS: durMS, Size: in.Size, Codec: in.Codec,
	}
	created, err := a.Store.AddRecording(ctx, r)
	if err != nil {
		return RecordSegmentResult{}, a.channelGone(ctx, cid, err)
	}
	return RecordSegmentResult{RecordingID: r.ID.String(), Created: created}, nil
}

// channelGone turns a write error into a non-retryable ErrChannelDeleted
// when the channel no longer exists (its rows cascade away), so the
// workflow stops instead of retrying a foreign-key violation forever.
func (a *Activities) channelGone(ctx context.Context, channelID uuid.UUID, err error) error {
	if _, cerr := a.Store.ChannelByID(ctx, channelID); errors.Is(cerr, store.ErrNotFound) {
		return permanent(ErrChannelDeleted, "channel %s was deleted", channelID)
	}
	return err
}

// NotifyClipsInput names the channel and the segment just stored.
type NotifyClipsInput struct {
	ChannelID string
	Segment   contract.SegmentSignal
}

// NotifyClips signals every clip workflow of the channel that may gain from
// the segment: clips in progress whose range starts before the segment ends
// (those overlapping it, and those whose range the stream has now passed,
// which can finish). Clips whose range lies wholly after the segment are
// left alone: the segment cannot change them, and their own timer wakes
// them. A clip whose workflow already finished is skipped. It returns how
// many clips it signalled.
func (a *Activities) NotifyClips(ctx context.Context, in NotifyClipsInput) (int, error) {
	cid, err := parseID("channel", in.ChannelID)
	if err != nil {
		return 0, err
	}
	// Activity-local query; clips_channel_status_idx serves it.
	var ids []uuid.UUID
	err = a.Store.DB.NewSelect().Model((*store.Clip)(nil)).Column("id").
		Where("channel_id = ?", cid).Where("status = ?", contract.ClipInProgress).
		Where("start_time < ?", store.UTCms(in.Segment.End)).
		Order("id").Scan(ctx, &ids)
	if err != nil {
		return 0, fmt.Errorf("clips waiting on channel: %w", err)
	}
	n := 0
	for _, id := range ids {
		err := a.Temporal.SignalWorkflow(ctx, contract.ClipWorkflowID(id.String()), "", contract.SignalSegment, in.Segment)
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			// The clip's workflow has finished; its row just lags behind.
		case err != nil:
			// Retrying re-signals the clips already told: harmless, their
			// appends are idempotent.
			return n, fmt.Errorf("signal clip %s: %w", id, err)
		default:
			n++
		}
	}
	return n, nil
}

// RecordLateSegment records a segment whose stream workflow has already
// ended (a late upload from a media worker's spool) and wakes the clips
// waiting for it. The API calls it directly, outside any workflow.
func (a *Activities) RecordLateSegment(ctx context.Context, sessionID, channelID string, seg recording.SegmentReport) error {
	res, err := a.RecordSegment(ctx, RecordSegmentInput{SessionID: sessionID, ChannelID: channelID, SegmentReport: seg})
	if err != nil || !res.Created {
		return err
	}
	n, err := a.NotifyClips(ctx, NotifyClipsInput{ChannelID: channelID,
		Segment: contract.SegmentSignal{RecordingID: res.RecordingID, Start: seg.Start, End: seg.End}})
	if err != nil {
		return err
	}
	logger(ctx).Info("late segment recorded", "session", sessionID, "channel", channelID, "key", seg.Key, "clips", n)
	return nil
}

package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows/contract"
)

// appendBatch bounds one insert of clip segment links (SQLite and PostgreSQL
// both cap bound parameters per statement).
const appendBatch = 500

// Coverage is how much of a clip's range its recordings cover.
type Coverage struct {
	// CoveredSeconds is the union of the recordings, clipped to the range.
	CoveredSeconds float64
	// NewestEnd is how far the channel's recordings reach for this clip: the
	// latest end among those overlapping the range or, when one starts at or
	// after the range's end, that one's end (the stream has moved past the
	// range, so no more segments will come for it).
	NewestEnd time.Time
	// Segments is how many recordings the clip holds; Added how many this
	// call linked.
	Segments int
	Added    int
}

// AppendClipRecordings links every recording overlapping the clip's range to
// the clip (idempotently: a retry or a repeated signal adds nothing twice),
// stores the progress on the clip row, and reports the coverage.
func (a *Activities) AppendClipRecordings(ctx context.Context, clipID string) (Coverage, error) {
	id, err := parseID("clip", clipID)
	if err != nil {
		return Coverage{}, err
	}
	clip, err := a.Store.ClipByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Coverage{}, permanent(ErrClipDeleted, "clip %s was deleted", clipID)
	}
	if err != nil {
		return Coverage{}, fmt.Errorf("read clip: %w", err)
	}
	if _, err := a.Store.ChannelByID(ctx, clip.ChannelID); errors.Is(err, store.ErrNotFound) {
		return Coverage{}, permanent(ErrChannelDeleted, "channel %s was deleted", clip.ChannelID)
	} else if err != nil {
		return Coverage{}, fmt.Errorf("read channel: %w", err)
	}

	recs, err := a.Store.RecordingsBetween(ctx, clip.ChannelID, clip.Start, clip.End)
	if err != nil {
		return Coverage{}, fmt.Errorf("recordings in clip range: %w", err)
	}
	linked, err := a.linkedRecordings(ctx, id)
	if err != nil {
		return Coverage{}, err
	}
	var fresh []uuid.UUID
	for _, r := range recs {
		if _, ok := linked[r.ID]; !ok {
			fresh = append(fresh, r.ID)
		}
	}
	cov := Coverage{Segments: len(recs), CoveredSeconds: covered(recs, clip.Start, clip.End).Seconds()}
	for len(fresh) > 0 {
		n := min(len(fresh), appendBatch)
		added, err := a.Store.AppendClipSegments(ctx, id, fresh[:n])
		if err != nil {
			return Coverage{}, err
		}
		cov.Added += added
		fresh = fresh[n:]
	}
	for _, r := range recs {
		if r.End.After(cov.NewestEnd) {
			cov.NewestEnd = r.End
		}
	}
	if cov.NewestEnd.Before(clip.End) {
		next, err := a.firstRecordingFrom(ctx, clip.ChannelID, clip.End)
		if err != nil {
			return Coverage{}, err
		}
		if next.After(cov.NewestEnd) {
			cov.NewestEnd = next
		}
	}
	if cov.Added > 0 {
		if err := a.storeClipProgress(ctx, id, cov.CoveredSeconds/clip.End.Sub(clip.Start).Seconds()); err != nil {
			return Coverage{}, err
		}
	}
	return cov, nil
}

// covered is the length of the union of the recordings (ordered by start)
// within [from, to).
func covered(recs []store.Recording, from, to time.Time) time.Duration {
	var total time.Duration
	reach := from // everything before reach is counted already
	for _, r := range recs {
		start, end := r.Start, r.End
		if start.Before(reach) {
			start = reach
		}
		if end.After(to) {
			end = to
		}
		if end.After(start) {
			total += end.Sub(start)
			reach = end
		}
	}
	return total
}

// linkedRecordings is the set of recordings already appended to the clip.
// (Activity-local query: the store has no id-only variant of ClipRecordings.)
func (a *Activities) linkedRecordings(ctx context.Context, clipID uuid.UUID) (map[uuid.UUID]struct{}, error) {
	var ids []uuid.UUID
	err := a.Store.DB.NewSelect().Model((*store.ClipSegment)(nil)).Column("recording_id").
		Where("clip_id = ?", clipID).Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("clip segments: %w", err)
	}
	set := make(map[uuid.UUID]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return set, nil
}

// firstRecordingFrom is the end of the channel's first recording starting at
// or after t (zero if none). (Activity-local query, on the
// recordings_channel_start_idx index.)
func (a *Activities) firstRecordingFrom(ctx context.Context, channelID uuid.UUID, t time.Time) (time.Time, error) {
	var r store.Recording
	err := a.Store.DB.NewSelect().Model(&r).Column("end_time").
		Where("channel_id = ?", channelID).Where("start_time >= ?", store.UTCms(t)).
		Order("start_time").Limit(1).Scan(ctx)
	if err != nil {
		if isNoRows(err) {
			return time.Time{}, nil
		}
		return time.Time{}, fmt.Errorf("recording after clip range: %w", err)
	}
	return r.End, nil
}

// storeClipProgress writes the progress of a clip still in progress, so the
// REST view shows it without asking the workflow. (Activity-local query:
// UpdateClip writes status and key too.)
func (a *Activities) storeClipProgress(ctx context.Context, clipID uuid.UUID, progress float64) error {
	_, err := a.Store.DB.NewUpdate().Model((*store.Clip)(nil)).
		Set("progress = ?", progress).Set("updated_at = ?", store.UTCms(time.Now())).
		Where("id = ?", clipID).Where("status = ?", contract.ClipInProgress).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store clip progress: %w", err)
	}
	return nil
}

// ClipStatusInput is the outcome a clip workflow writes back.
type ClipStatusInput struct {
	ClipID    string
	Status    string // contract.ClipInProgress, ClipFinished or ClipFailed
	Progress  float64
	ObjectKey string
	Error     string
}

// SetClipStatus writes a clip's status, progress, object key and error.
func (a *Activities) SetClipStatus(ctx context.Context, in ClipStatusInput) error {
	id, err := parseID("clip", in.ClipID)
	if err != nil {
		return err
	}
	err = a.Store.UpdateClip(ctx, id, store.ClipUpdate{Status: in.Status, Progress: in.Progress, ObjectKey: in.ObjectKey, Error: in.Error})
	if errors.Is(err, store.ErrNotFound) {
		return permanent(ErrClipDeleted, "clip %s was deleted", in.ClipID)
	}
	return err
}

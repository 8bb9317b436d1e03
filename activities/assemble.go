package activities

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.temporal.io/sdk/activity"

	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
)

// ErrNoMedia: a clip's recordings hold no decodable media in its range.
const ErrNoMedia = "NoMedia"

// AssembleResult is where the assembled clip went and what it holds.
type AssembleResult struct {
	ObjectKey       string
	DurationSeconds float64
	Size            int64
}

// AssembleClip writes the clip as ONE MP4 object (recording.ClipKey): the
// recordings appended to it, joined with continuous timestamps and trimmed
// to the clip's range on keyframe boundaries. It streams segment by segment
// into a multipart upload, so memory stays at one part whatever the length.
// Running it again overwrites the object with the same bytes.
func (a *Activities) AssembleClip(ctx context.Context, clipID string) (AssembleResult, error) {
	id, err := parseID("clip", clipID)
	if err != nil {
		return AssembleResult{}, err
	}
	clip, err := a.Store.ClipByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return AssembleResult{}, permanent(ErrClipDeleted, "clip %s was deleted", clipID)
	}
	if err != nil {
		return AssembleResult{}, err
	}
	recs, err := a.Store.ClipRecordings(ctx, clip.ID)
	if err != nil {
		return AssembleResult{}, err
	}
	segs := make([]media.JoinSegment, 0, len(recs))
	for i, r := range recs {
		// A recording whose object is gone (removed by hand or by retention)
		// is left out: the clip keeps what footage there is.
		if _, err := a.Objects.Head(ctx, r.Key); errors.Is(err, objectstore.ErrNotFound) {
			logger(ctx).Warn("clip segment object missing, left out", "clip", clipID, "key", r.Key)
			continue
		} else if err != nil {
			return AssembleResult{}, err
		}
		segs = append(segs, media.JoinSegment{Start: r.Start, Open: func() (io.ReadCloser, error) {
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, i)
			}
			rc, _, err := a.Objects.Get(ctx, r.Key)
			return rc, err
		}})
	}
	key := recording.ClipKey(clip.ChannelID, clip.ID)
	w, err := a.Objects.NewMultipartWriter(ctx, key, "video/mp4")
	if err != nil {
		return AssembleResult{}, err
	}
	res, err := media.Join(w, segs, clip.Start, clip.End)
	if err != nil {
		_ = w.Abort()
		if errors.Is(err, media.ErrNoMedia) || errors.Is(err, media.ErrIncompatibleSegments) || errors.Is(err, media.ErrBadSegment) {
			return AssembleResult{}, permanent(ErrNoMedia, "assemble clip: %v", err)
		}
		return AssembleResult{}, fmt.Errorf("assemble clip: %w", err)
	}
	if err := w.Close(); err != nil {
		return AssembleResult{}, fmt.Errorf("upload clip: %w", err)
	}
	return AssembleResult{ObjectKey: key, DurationSeconds: res.Duration.Seconds(), Size: res.Size}, nil
}

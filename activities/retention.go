package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"go.temporal.io/sdk/activity"
)

// RetentionInput asks for one pass over a page of channels.
type RetentionInput struct {
	Now          time.Time // the sweep's time (workflow time, so retries agree)
	AfterChannel string    // page start: channels with a greater id ("" from the first)
	Channels     int       // channels per page
	Batch        int       // recordings deleted per round trip
}

// RetentionResult is what one pass did and where the next one starts.
type RetentionResult struct {
	Deleted     int
	NextChannel string
	Done        bool // no channels after this page
}

// ExpireRecordings deletes, for each channel of one page, the recordings
// that ended more than the channel's retention days before Now: objects
// first, then rows, a batch at a time. Clips are separate objects and stay.
// A crash between the two leaves rows whose objects are gone; the next pass
// deletes them (deleting a missing object is not an error).
func (a *Activities) ExpireRecordings(ctx context.Context, in RetentionInput) (RetentionResult, error) {
	after := uuid.Nil
	if in.AfterChannel != "" {
		var err error
		if after, err = parseID("channel", in.AfterChannel); err != nil {
			return RetentionResult{}, err
		}
	}
	chans, err := a.Store.ChannelsForRetention(ctx, after, in.Channels)
	if err != nil {
		return RetentionResult{}, err
	}
	res := RetentionResult{NextChannel: in.AfterChannel, Done: len(chans) < in.Channels}
	for _, ch := range chans {
		cutoff := in.Now.AddDate(0, 0, -ch.RetentionDays)
		for {
			recs, err := a.Store.ExpiredRecordings(ctx, ch.ID, cutoff, in.Batch)
			if err != nil {
				return res, err
			}
			if len(recs) == 0 {
				break
			}
			keys := make([]string, len(recs))
			ids := make([]uuid.UUID, len(recs))
			for i, r := range recs {
				keys[i], ids[i] = r.Key, r.ID
			}
			if err := a.Objects.DeleteKeys(ctx, keys); err != nil {
				return res, err
			}
			n, err := a.Store.DeleteRecordings(ctx, ids)
			if err != nil {
				return res, err
			}
			res.Deleted += n
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, res.Deleted)
			}
		}
		res.NextChannel = ch.ID.String()
	}
	return res, nil
}

// PurgeChannelObjects deletes every object of a deleted channel: its
// recordings, clips and snapshots (the rows went with the channel).
func (a *Activities) PurgeChannelObjects(ctx context.Context, channelID string) (int, error) {
	id, err := parseID("channel", channelID)
	if err != nil {
		return 0, err
	}
	// Only a channel known to be gone may lose its objects: a failed read
	// is retried, never taken for "deleted".
	switch _, err := a.Store.ChannelByID(ctx, id); {
	case err == nil:
		return 0, permanent(ErrBadInput, "channel %s still exists", channelID)
	case !errors.Is(err, store.ErrNotFound):
		return 0, fmt.Errorf("read channel %s: %w", channelID, err)
	}
	total := 0
	// Everything uploaded until now; far in the future covers clock skew.
	before := time.Now().Add(24 * time.Hour)
	for _, prefix := range recording.ChannelPrefixes(channelID) {
		n, err := a.Objects.DeletePrefixOlderThan(ctx, prefix, before)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Package recording is the recording contract the NVR's parts share: where
// recordings, clips and snapshots live in the bucket, what a media worker
// reports about a segment (to the API, and as the segment object's
// metadata), and what the control plane grants a media worker for a stream.
//
// It is a leaf package (no storage, Temporal or media imports), so the media
// worker, the reconciler, the store, the activities and the API can all
// import it and two copies of the contract can never disagree.
package recording

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Key prefixes; every object of a channel lives under
// <prefix><channel>/.
const (
	RecordingsPrefix = "recordings/"
	ClipsPrefix      = "clips/"
	SnapshotsPrefix  = "snapshots/"
)

// ChannelPrefixes lists the prefixes holding a channel's objects, for
// deleting them all.
func ChannelPrefixes(channelID string) []string {
	return []string{RecordingsPrefix + channelID + "/", ClipsPrefix + channelID + "/", SnapshotsPrefix + channelID + "/"}
}

// RecordingKey is the S3 key of a segment:
// recordings/<channel>/<yyyy>/<mm>/<dd>/<start-ms>-<session>.mp4
func RecordingKey(channelID, sessionID uuid.UUID, start time.Time) string {
	start = start.UTC()
	return fmt.Sprintf("%s%s/%04d/%02d/%02d/%d-%s.mp4", RecordingsPrefix,
		channelID, start.Year(), start.Month(), start.Day(), start.UnixMilli(), sessionID)
}

// ParseRecordingKey reads the channel, session and start out of a segment
// key as RecordingKey writes it.
func ParseRecordingKey(key string) (channelID, sessionID uuid.UUID, start time.Time, err error) {
	bad := func(why string) (uuid.UUID, uuid.UUID, time.Time, error) {
		return uuid.Nil, uuid.Nil, time.Time{}, fmt.Errorf("recording key %q: %s", key, why)
	}
	parts := strings.Split(key, "/")
	if len(parts) != 6 || parts[0]+"/" != RecordingsPrefix {
		return bad("want recordings/<channel>/<yyyy>/<mm>/<dd>/<start-ms>-<session>.mp4")
	}
	channelID, err = uuid.Parse(parts[1])
	if err != nil {
		return bad("bad channel id")
	}
	name, ok := strings.CutSuffix(parts[5], ".mp4")
	if !ok {
		return bad("not an .mp4")
	}
	ms, session, ok := strings.Cut(name, "-")
	if !ok {
		return bad("no session id")
	}
	msec, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return bad("bad start")
	}
	if sessionID, err = uuid.Parse(session); err != nil {
		return bad("bad session id")
	}
	start = time.UnixMilli(msec).UTC()
	// Writing the key back catches everything else: date folders that do
	// not match the start, non-canonical ids.
	if RecordingKey(channelID, sessionID, start) != key {
		return bad("not in canonical form")
	}
	return channelID, sessionID, start, nil
}

// ClipKey is the S3 key of a clip's assembled MP4.
func ClipKey(channelID, clipID uuid.UUID) string {
	return fmt.Sprintf("%s%s/%s.mp4", ClipsPrefix, channelID, clipID)
}

// SnapshotKey is the S3 key of a snapshot image.
func SnapshotKey(channelID, snapshotID uuid.UUID) string {
	return fmt.Sprintf("%s%s/%s.jpg", SnapshotsPrefix, channelID, snapshotID)
}

// Package recordingtest gives tests real recordings: fMP4 segment files cut
// by the media worker's Segmenter from the demo camera's stream
// (testdata/demo.h264: 640x360, 25 fps, a keyframe every 2 s), uploaded to
// S3 under recording.RecordingKey and stored as recording rows, so that clip
// assembly has media to join.
//
// A segment's bytes depend only on its length: the wall time of its first
// frame is the recording row's Start (what media.Join goes by), not
// something in the file. So one segment per length is cut per test binary
// and uploaded under every key that needs one.
package recordingtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
)

// GOP is the keyframe interval of the demo stream: clips are cut on
// keyframes, so an assembled clip may start up to one GOP before its range
// and end up to one GOP after it.
const GOP = 2 * time.Second

// frameDuration is the demo stream's frame interval (25 fps).
const frameDuration = 40 * time.Millisecond

// Segment is one recording segment file.
type Segment struct {
	Data     []byte
	Duration time.Duration
	Codec    string
}

// cut caches segments by length for the whole test binary: cutting one is
// cheap, but tests add hundreds of recordings. Package state because the
// cache must outlive any one test's handles; it is never mutated after a
// length is first cut.
var cut struct {
	mu   sync.Mutex
	segs map[time.Duration]Segment
}

// Cut returns a segment of the demo stream lasting d, which must be a
// positive multiple of the frame interval (40 ms). It starts on a keyframe;
// later keyframes follow every GOP.
func Cut(tb testing.TB, d time.Duration) Segment {
	tb.Helper()
	if d <= 0 || d%frameDuration != 0 {
		tb.Fatalf("recordingtest: segment length %s is not a positive multiple of %s", d, frameDuration)
	}
	cut.mu.Lock()
	defer cut.mu.Unlock()
	if seg, ok := cut.segs[d]; ok {
		return seg
	}
	seg, err := cutSegment(tb.TempDir(), d)
	if err != nil {
		tb.Fatalf("recordingtest: cut a %s segment: %v", d, err)
	}
	if cut.segs == nil {
		cut.segs = map[time.Duration]Segment{}
	}
	cut.segs[d] = seg
	return seg
}

// cutSegment feeds the Segmenter the demo stream, looped, for exactly d: it
// gives the last frame the previous frame's duration on Close, so the one
// segment lasts d.
func cutSegment(dir string, d time.Duration) (Segment, error) {
	path, err := demoPath()
	if err != nil {
		return Segment{}, err
	}
	track, frames, err := media.ReadH264File(path, 25)
	if err != nil {
		return Segment{}, err
	}
	track.ID = 1
	var done []mediaworker.Segment
	s, err := mediaworker.NewSegmenter(mediaworker.SegmenterConfig{
		Dir: dir, Tracks: []media.Track{track}, Target: d,
		// No gap can occur in a loop of the sample; a long MaxGap keeps the
		// setting out of the way.
		MaxGap:    time.Hour,
		OnSegment: func(seg mediaworker.Segment) error { done = append(done, seg); return nil },
	})
	if err != nil {
		return Segment{}, err
	}
	// The sample starts on a keyframe and ends right before one, so looping
	// it (shifting timestamps by its length) is seamless.
	period := time.Duration(len(frames)) * frameDuration
	wall := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for loop := time.Duration(0); loop < d; loop += period {
		for _, f := range frames {
			f.Track = track.ID
			f.DTS += loop
			f.PTS += loop
			if f.DTS >= d {
				break
			}
			f.Wall = wall.Add(f.DTS)
			if err := s.WriteFrame(f); err != nil {
				return Segment{}, err
			}
		}
	}
	if err := s.Close(); err != nil {
		return Segment{}, err
	}
	if len(done) != 1 || done[0].Duration != d {
		return Segment{}, fmt.Errorf("segmenter made %d segments (%+v), want one of %s", len(done), done, d)
	}
	data, err := os.ReadFile(done[0].Path)
	if err != nil {
		return Segment{}, err
	}
	return Segment{Data: data, Duration: d, Codec: done[0].Codec}, nil
}

// demoPath finds testdata/demo.h264 at the module root, above the test's
// working directory (its package's folder).
func demoPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "demo.h264"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Put uploads a segment lasting d under key and returns it.
func Put(tb testing.TB, objects *objectstore.Client, key string, d time.Duration) Segment {
	tb.Helper()
	seg := Cut(tb, d)
	if err := objects.Put(context.Background(), key, bytes.NewReader(seg.Data), int64(len(seg.Data)), "video/mp4"); err != nil {
		tb.Fatalf("recordingtest: upload %s: %v", key, err)
	}
	return seg
}

// Add records n back-to-back segments of length d of one new session of
// the channel, from start: each uploaded under recording.RecordingKey and
// stored as a recording row.
func Add(tb testing.TB, st *store.Store, objects *objectstore.Client, channelID uuid.UUID, start time.Time, n int, d time.Duration) []*store.Recording {
	tb.Helper()
	session := uuid.New()
	out := make([]*store.Recording, n)
	for i := range n {
		at := start.Add(time.Duration(i) * d)
		key := recording.RecordingKey(channelID, session, at)
		seg := Put(tb, objects, key, d)
		r := &store.Recording{ChannelID: channelID, SessionID: session, Key: key, Start: at, End: at.Add(d),
			DurationMS: d.Milliseconds(), Size: int64(len(seg.Data)), Codec: seg.Codec}
		if _, err := st.AddRecording(context.Background(), r); err != nil {
			tb.Fatalf("recordingtest: add recording: %v", err)
		}
		out[i] = r
	}
	return out
}

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
	seg := cutSegment(tb, tb.TempDir(), d)
	if cut.segs == nil {
		cut.segs = map[time.Duration]Segment{}
	}
	cut.segs[d] = seg
	return seg
}

// cutSegment cuts the demo stream's segment lasting d into dir.
func cutSegment(tb testing.TB, dir string, d time.Duration) Segment {
	tb.Helper()
	path, err := demoPath()
	if err != nil {
		tb.Fatalf("recordingtest: %v", err)
	}
	track, frames, err := media.ReadH264File(path, 25)
	if err != nil {
		tb.Fatalf("recordingtest: %v", err)
	}
	track.ID = 1
	for i := range frames {
		frames[i].Track = track.ID
	}
	seg := CutFile(tb, dir, track, frames, d)
	data, err := os.ReadFile(seg.Path)
	if err != nil {
		tb.Fatalf("recordingtest: %v", err)
	}
	return Segment{Data: data, Duration: d, Codec: seg.Codec}
}

// CutFile has the media worker's Segmenter cut one segment lasting d, a
// multiple of the frame interval (40 ms), from a 25 fps sample looped, into
// a file in dir, and returns it. The sample must start on a keyframe and
// end right before one, so that looping it (shifting timestamps by its
// length) is seamless. The Segmenter gives the last frame the previous
// frame's duration on Close, so the one segment lasts exactly d.
func CutFile(tb testing.TB, dir string, track media.Track, frames []media.Frame, d time.Duration) mediaworker.Segment {
	tb.Helper()
	var done []mediaworker.Segment
	s, err := mediaworker.NewSegmenter(mediaworker.SegmenterConfig{
		Dir: dir, Tracks: []media.Track{track}, Target: d,
		// No gap can occur in a loop of the sample; a long MaxGap keeps the
		// setting out of the way.
		MaxGap:    time.Hour,
		OnSegment: func(seg mediaworker.Segment) error { done = append(done, seg); return nil },
	})
	if err != nil {
		tb.Fatalf("recordingtest: %v", err)
	}
	period := time.Duration(len(frames)) * frameDuration
	wall := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for loop := time.Duration(0); loop < d; loop += period {
		for _, f := range frames {
			f.DTS += loop
			f.PTS += loop
			if f.DTS >= d {
				break
			}
			f.Wall = wall.Add(f.DTS)
			if err := s.WriteFrame(f); err != nil {
				tb.Fatalf("recordingtest: %v", err)
			}
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatalf("recordingtest: %v", err)
	}
	if len(done) != 1 || done[0].Duration != d {
		tb.Fatalf("recordingtest: segmenter cut %d segments (%+v), want one of %s", len(done), done, d)
	}
	return done[0]
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

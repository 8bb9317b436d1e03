package mediaworker

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/media/mediatest"
)

// TestSegmentsJoinIntoClip cuts a B-frame stream into 30 s segments and
// joins a range spanning all three into one clip.
func TestSegmentsJoinIntoClip(t *testing.T) {
	track, frames := loadH264(t, "bframes.h264", 76*time.Second)
	segs := runSegmenter(t, SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{track}}, frames)
	if len(segs) != 3 {
		t.Fatalf("%d segments", len(segs))
	}
	var js []media.JoinSegment
	for _, s := range segs {
		js = append(js, media.JoinSegment{Start: s.Start, Open: func() (io.ReadCloser, error) { return os.Open(s.Path) }})
	}
	from, to := t0.Add(20500*time.Millisecond), t0.Add(65300*time.Millisecond)
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	f, err := os.Create(clip)
	if err != nil {
		t.Fatal(err)
	}
	res, err := media.Join(f, js, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Keyframes every 2 s: the clip runs from the 20 s keyframe to the 66 s one.
	if !res.Start.Equal(t0.Add(20*time.Second)) || res.Duration != 46*time.Second || !res.End.Equal(t0.Add(66*time.Second)) {
		t.Fatalf("join result %+v", res)
	}
	if st, err := os.Stat(clip); err != nil || st.Size() != res.Size {
		t.Fatalf("clip size %v vs %d", err, res.Size)
	}

	mediatest.Need(t)
	assertDecodes(t, clip, res.Duration)
	requested := to.Sub(from)
	if d := mediatest.Duration(t, clip); d < requested || d > requested+2*2*time.Second {
		t.Fatalf("clip lasts %v, requested %v (+ at most one GOP at each end)", d, requested)
	}
	mediatest.AssertConstantStep(t, "packet dts", mediatest.Ints(t, clip, "packet=dts"), 3600)
	mediatest.AssertConstantStep(t, "frame pts", mediatest.Ints(t, clip, "frame=pts"), 3600)
}

// TestTwoTrackSegmentsJoin joins segments carrying an H.264 and an MJPEG
// track: the clip keeps both, trimmed to the video's span.
func TestTwoTrackSegmentsJoin(t *testing.T) {
	h264Track, video := loadH264(t, "bframes.h264", 12*time.Second)
	jpegTrack := media.Track{ID: 9, Codec: media.CodecMJPEG}
	frames := mergeByDTS(video, mjpegFrames(t, 120, 10, 9, 64, 48))
	segs := runSegmenter(t, SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{h264Track, jpegTrack}, Target: 4 * time.Second}, frames)
	var js []media.JoinSegment
	for _, s := range segs {
		js = append(js, media.JoinSegment{Start: s.Start, Open: func() (io.ReadCloser, error) { return os.Open(s.Path) }})
	}
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	f, err := os.Create(clip)
	if err != nil {
		t.Fatal(err)
	}
	res, err := media.Join(f, js, t0.Add(3*time.Second), t0.Add(9*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !res.Start.Equal(t0.Add(2*time.Second)) || res.Duration != 8*time.Second {
		t.Fatalf("join result %+v", res)
	}
	mediatest.Need(t)
	if got := mediatest.Streams(t, clip); len(got) != 2 || got[0] != "h264,320,180" || got[1] != "mjpeg,64,48" {
		t.Fatalf("streams %q", got)
	}
	assertDecodes(t, clip, res.Duration)
	jpegPackets := mediatest.Probe(t, clip, "-select_streams", "v:1", "-show_entries", "packet=pts", "-of", "csv=p=0")
	if len(jpegPackets) != 80 { // 8 s at 10 fps
		t.Fatalf("%d mjpeg packets, want 80", len(jpegPackets))
	}
}

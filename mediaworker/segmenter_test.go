package mediaworker

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/media/mediatest"
)

func TestSegmenterH264(t *testing.T) {
	for _, sample := range []string{"demo.h264", "bframes.h264"} {
		t.Run(sample, func(t *testing.T) {
			// 76 s: the stream ends at a GOP boundary. Cut anywhere else, a
			// B-frame stream's last GOP lacks frames its P-frames skipped
			// over, and presentation times would (rightly) show a hole.
			track, frames := loadH264(t, sample, 76*time.Second)
			dir := t.TempDir()
			segs := runSegmenter(t, SegmenterConfig{Dir: dir, Tracks: []media.Track{track}, Target: 30 * time.Second}, frames)

			wantDur := []time.Duration{30 * time.Second, 30 * time.Second, 16 * time.Second}
			if len(segs) != len(wantDur) {
				t.Fatalf("%d segments, want %d: %+v", len(segs), len(wantDur), segs)
			}
			var paths []string
			for i, seg := range segs {
				wantStart := t0.Add(time.Duration(i) * 30 * time.Second)
				if seg.Duration != wantDur[i] || !seg.Start.Equal(wantStart) || !seg.End.Equal(wantStart.Add(wantDur[i])) {
					t.Fatalf("segment %d: %+v, want start %v duration %v", i, seg, wantStart, wantDur[i])
				}
				if seg.Codec != media.CodecH264 {
					t.Fatalf("codec %q", seg.Codec)
				}
				st, err := os.Stat(seg.Path)
				if err != nil || st.Size() != seg.Size {
					t.Fatalf("segment %d file: %v, size %d vs %d", i, err, st.Size(), seg.Size)
				}
				paths = append(paths, filepath.Base(seg.Path))
				checkSegmentFile(t, seg, track)
			}
			// Names sort by time, and nothing half-written is left behind.
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if !slices.Equal(names, paths) || !slices.IsSorted(paths) {
				t.Fatalf("dir has %v, segments %v", names, paths)
			}
			if paths[0] != "20250601T120000.000Z.mp4" {
				t.Fatalf("first segment named %q", paths[0])
			}

			mediatest.Need(t)
			for _, seg := range segs {
				assertDecodes(t, seg.Path, seg.Duration)
				mediatest.AssertConstantStep(t, "packet dts", mediatest.Ints(t, seg.Path, "packet=dts"), 3600)
				mediatest.AssertConstantStep(t, "frame pts", mediatest.Ints(t, seg.Path, "frame=pts"), 3600)
			}
		})
	}
}

// checkSegmentFile parses a segment: one H.264 track with the Hello's
// parameters, keyframe first, fragments of at most a second that follow on
// without gaps and add up to the segment's duration.
func checkSegmentFile(t *testing.T, seg Segment, track media.Track) {
	t.Helper()
	sf := readSegmentFile(t, seg.Path)
	if len(sf.init.Tracks) != 1 {
		t.Fatalf("%d init tracks", len(sf.init.Tracks))
	}
	c, ok := sf.init.Tracks[0].Codec.(*mp4.CodecH264)
	if !ok || !bytes.Equal(c.SPS, track.SPS) || !bytes.Equal(c.PPS, track.PPS) {
		t.Fatalf("init codec %#v", sf.init.Tracks[0].Codec)
	}
	next := uint64(0)
	for i, p := range sf.parts {
		if p.SequenceNumber != uint32(i+1) || len(p.Tracks) != 1 {
			t.Fatalf("fragment %d: seq %d, %d tracks", i, p.SequenceNumber, len(p.Tracks))
		}
		pt := p.Tracks[0]
		if i == 0 && pt.Samples[0].IsNonSyncSample {
			t.Fatal("segment does not start with a keyframe")
		}
		if pt.BaseTime != next {
			t.Fatalf("fragment %d base %d, previous ended at %d", i, pt.BaseTime, next)
		}
		var d uint64
		for _, s := range pt.Samples {
			d += uint64(s.Duration)
			if err := media.ValidateAVCC(s.Payload); err != nil {
				t.Fatal(err)
			}
		}
		if d > 90000 {
			t.Fatalf("fragment %d lasts %d ticks, want <= 1 s", i, d)
		}
		next += d
	}
	if got := time.Duration(next) * time.Second / 90000; got != seg.Duration {
		t.Fatalf("fragments add up to %v, segment says %v", got, seg.Duration)
	}
}

func TestSegmenterH265(t *testing.T) {
	track, frames := loadH265(t)
	if len(frames) != 100 || !frames[0].Keyframe || !frames[50].Keyframe {
		t.Fatalf("h265 sample: %d frames", len(frames))
	}
	if err := media.ValidateTrack(track); err != nil {
		t.Fatal(err)
	}
	frames = loop(frames, 10*time.Second, 1)
	segs := runSegmenter(t, SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{track}, Target: 4 * time.Second}, frames)
	want := []time.Duration{4 * time.Second, 4 * time.Second, 2 * time.Second}
	if len(segs) != len(want) {
		t.Fatalf("%d segments: %+v", len(segs), segs)
	}
	mediatest.Need(t)
	for i, seg := range segs {
		if seg.Duration != want[i] || seg.Codec != media.CodecH265 {
			t.Fatalf("segment %d: %+v", i, seg)
		}
		assertDecodes(t, seg.Path, seg.Duration)
		if got := mediatest.Streams(t, seg.Path); !slices.Equal(got, []string{"hevc,320,180"}) {
			t.Fatalf("streams %q", got)
		}
	}
}

func TestSegmenterMJPEG(t *testing.T) {
	frames := mjpegFrames(t, 120, 10, 7, 160, 120) // 12 s at 10 fps
	track := media.Track{ID: 7, Codec: media.CodecMJPEG}
	segs := runSegmenter(t, SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{track}, Target: 5 * time.Second}, frames)
	want := []time.Duration{5 * time.Second, 5 * time.Second, 2 * time.Second}
	if len(segs) != len(want) {
		t.Fatalf("%d segments: %+v", len(segs), segs)
	}
	mediatest.Need(t)
	for i, seg := range segs {
		if seg.Duration != want[i] || seg.Codec != media.CodecMJPEG {
			t.Fatalf("segment %d: %+v", i, seg)
		}
		assertDecodes(t, seg.Path, seg.Duration)
		if got := mediatest.Streams(t, seg.Path); !slices.Equal(got, []string{"mjpeg,160,120"}) {
			t.Fatalf("streams %q", got)
		}
	}
}

func TestSegmenterTwoTracks(t *testing.T) {
	h264Track, video := loadH264(t, "bframes.h264", 12*time.Second)
	jpegTrack := media.Track{ID: 9, Codec: media.CodecMJPEG}
	frames := mergeByDTS(video, mjpegFrames(t, 120, 10, 9, 64, 48))
	segs := runSegmenter(t, SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{h264Track, jpegTrack}, Target: 4 * time.Second}, frames)
	if len(segs) != 3 {
		t.Fatalf("%d segments: %+v", len(segs), segs)
	}
	mediatest.Need(t)
	for _, seg := range segs {
		if got := mediatest.Streams(t, seg.Path); !slices.Equal(got, []string{"h264,320,180", "mjpeg,64,48"}) {
			t.Fatalf("%s: streams %q", filepath.Base(seg.Path), got)
		}
		assertDecodes(t, seg.Path, seg.Duration)
	}
}

func TestSegmenterParameterChange(t *testing.T) {
	demoTrack, demo := loadH264(t, "demo.h264", 6*time.Second)
	smallTrack, small := loadH264(t, "bframes.h264", 4*time.Second)
	// The camera switches resolution at 6 s, announcing the new SPS/PPS
	// in-band on the first keyframe.
	var frames []media.Frame
	frames = append(frames, demo...)
	for i, f := range small {
		f.DTS += 6 * time.Second
		f.PTS += 6 * time.Second
		f.Wall = f.Wall.Add(6 * time.Second)
		if i == 0 {
			f.Payload = append(avcc(smallTrack.SPS, smallTrack.PPS), f.Payload...)
		}
		frames = append(frames, f)
	}
	// Repeating the current parameters in-band must not cut.
	frames[50].Payload = append(avcc(demoTrack.SPS, demoTrack.PPS), frames[50].Payload...)

	segs := runSegmenter(t, SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{demoTrack}}, frames)
	if len(segs) != 2 || segs[0].Duration != 6*time.Second || segs[1].Duration != 4*time.Second {
		t.Fatalf("segments %+v", segs)
	}
	for i, want := range []media.Track{demoTrack, smallTrack} {
		c := readSegmentFile(t, segs[i].Path).init.Tracks[0].Codec.(*mp4.CodecH264)
		if !bytes.Equal(c.SPS, want.SPS) || !bytes.Equal(c.PPS, want.PPS) {
			t.Fatalf("segment %d has the wrong parameter sets", i)
		}
	}
	mediatest.Need(t)
	for i, want := range []string{"h264,640,360", "h264,320,180"} {
		if got := mediatest.Streams(t, segs[i].Path); !slices.Equal(got, []string{want}) {
			t.Fatalf("segment %d streams %q", i, got)
		}
		assertDecodes(t, segs[i].Path, segs[i].Duration)
	}
}

func TestSegmenterStartsAtKeyframe(t *testing.T) {
	track, frames := loadH264(t, "demo.h264", 10*time.Second)
	// The bitstream, not the flag, decides: a P-frame flagged as keyframe
	// cannot start a segment, an unflagged IDR can.
	frames[10].Keyframe, frames[50].Keyframe = true, false
	segs := runSegmenter(t, SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{track}}, frames[10:])
	if len(segs) != 1 {
		t.Fatalf("segments %+v", segs)
	}
	if !segs[0].Start.Equal(t0.Add(2*time.Second)) || segs[0].Duration != 8*time.Second {
		t.Fatalf("segment %+v, want start at the 2 s keyframe", segs[0])
	}
}

func TestSegmenterCutsAtGap(t *testing.T) {
	track, frames := loadH264(t, "demo.h264", 8*time.Second)
	// The camera stalls for 20 s after 4 s.
	for i := 100; i < len(frames); i++ {
		frames[i].DTS += 20 * time.Second
		frames[i].PTS += 20 * time.Second
		frames[i].Wall = frames[i].Wall.Add(20 * time.Second)
	}
	segs := runSegmenter(t, SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{track}, MaxGap: 5 * time.Second}, frames)
	if len(segs) != 2 {
		t.Fatalf("segments %+v", segs)
	}
	if segs[0].Duration != 4*time.Second || !segs[1].Start.Equal(t0.Add(24*time.Second)) || segs[1].Duration != 4*time.Second {
		t.Fatalf("segments %+v", segs)
	}
}

func TestSegmenterDroppedFrames(t *testing.T) {
	track, frames := loadH264(t, "demo.h264", 2*time.Second)
	jpegTrack := media.Track{ID: 2, Codec: media.CodecMJPEG}
	s, err := NewSegmenter(SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{track, jpegTrack}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames[:5] {
		if err := s.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	bad := func(f media.Frame, edit func(*media.Frame)) media.Frame {
		f.Payload = bytes.Clone(f.Payload)
		edit(&f)
		return f
	}
	tests := []struct {
		name string
		f    media.Frame
		want error
	}{
		{"unknown track", bad(frames[5], func(f *media.Frame) { f.Track = 42 }), ErrUnknownTrack},
		{"dts repeats", frames[4], ErrNonMonotonicDTS},
		{"dts goes back", frames[1], ErrNonMonotonicDTS},
		{"broken avcc", bad(frames[5], func(f *media.Frame) { f.Payload[3]++ }), ErrBadPayload},
		{"empty payload", bad(frames[5], func(f *media.Frame) { f.Payload = nil }), ErrBadPayload},
		{"negative dts", bad(frames[5], func(f *media.Frame) { f.DTS = -1 }), ErrBadPayload},
		{"not a jpeg", media.Frame{Track: 2, Keyframe: true, DTS: frames[5].DTS, Payload: []byte("GIF89a")}, ErrBadPayload},
		{"broken in-band sps", bad(frames[5], func(f *media.Frame) { f.Payload = append(avcc([]byte{0x67, 0xff}), f.Payload...) }), ErrBadPayload},
	}
	for _, tt := range tests {
		if err := s.WriteFrame(tt.f); !errors.Is(err, tt.want) {
			t.Fatalf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	// The stream goes on after dropped frames.
	for _, f := range frames[5:] {
		if err := s.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFrame(frames[0]); !errors.Is(err, ErrSegmenterClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestNewSegmenterErrors(t *testing.T) {
	h264 := media.Track{ID: 1, Codec: media.CodecH264}
	tests := map[string]SegmenterConfig{
		"no dir":        {Tracks: []media.Track{h264}},
		"no tracks":     {Dir: t.TempDir()},
		"unknown codec": {Dir: t.TempDir(), Tracks: []media.Track{{ID: 1, Codec: "vp9"}}},
		"duplicate ids": {Dir: t.TempDir(), Tracks: []media.Track{h264, h264}},
	}
	for name, cfg := range tests {
		if _, err := NewSegmenter(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestSegmenterWaitsForParameters(t *testing.T) {
	// No SPS/PPS in the Hello: keyframes are refused until they come in-band.
	full, frames := loadH264(t, "demo.h264", 4*time.Second)
	track := media.Track{ID: 1, Codec: media.CodecH264}
	var segs []Segment
	s, err := NewSegmenter(SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{track},
		OnSegment: func(seg Segment) error { segs = append(segs, seg); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFrame(frames[0]); !errors.Is(err, ErrNoParameters) {
		t.Fatalf("err = %v, want ErrNoParameters", err)
	}
	for i, f := range frames[1:] {
		if i+1 == 50 {
			f.Payload = append(avcc(full.SPS, full.PPS), f.Payload...)
		}
		if err := s.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || !segs[0].Start.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("segments %+v", segs)
	}
}

func TestSegmenterOnSegmentError(t *testing.T) {
	track, frames := loadH264(t, "demo.h264", 3*time.Second)
	boom := errors.New("notify failed")
	var got []Segment
	s, err := NewSegmenter(SegmenterConfig{Dir: t.TempDir(), Tracks: []media.Track{track}, Target: time.Second,
		OnSegment: func(seg Segment) error { got = append(got, seg); return boom }})
	if err != nil {
		t.Fatal(err)
	}
	errs := 0
	for _, f := range frames {
		if err := s.WriteFrame(f); err != nil {
			if !errors.Is(err, boom) {
				t.Fatal(err)
			}
			errs++
		}
	}
	if err := s.Close(); !errors.Is(err, boom) {
		t.Fatalf("close: %v", err)
	}
	// The failed callback cost no frames: segments 0-2 s and 2-3 s.
	if errs != 1 || len(got) != 2 || !got[1].Start.Equal(t0.Add(2*time.Second)) || got[1].Duration != time.Second {
		t.Fatalf("%d errors, segments %+v", errs, got)
	}
}

func TestSegmentNamesDoNotCollide(t *testing.T) {
	track, frames := loadH264(t, "demo.h264", 2*time.Second)
	dir := t.TempDir()
	a := runSegmenter(t, SegmenterConfig{Dir: dir, Tracks: []media.Track{track}}, frames)
	b := runSegmenter(t, SegmenterConfig{Dir: dir, Tracks: []media.Track{track}}, frames)
	if a[0].Path == b[0].Path || !strings.HasSuffix(b[0].Path, "-1.mp4") {
		t.Fatalf("paths %q and %q", a[0].Path, b[0].Path)
	}
	if _, err := os.Stat(a[0].Path); err != nil {
		t.Fatal(err)
	}
}

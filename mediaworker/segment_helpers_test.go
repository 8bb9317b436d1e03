package mediaworker

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/media/mediatest"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// assertDecodes runs the ffmpeg checks every segment or clip must pass.
func assertDecodes(t *testing.T, path string, wantDur time.Duration) {
	t.Helper()
	if msg := mediatest.DecodeErrors(t, path); msg != "" {
		t.Fatalf("%s: ffmpeg decode errors:\n%s", filepath.Base(path), msg)
	}
	if d := mediatest.Duration(t, path); (d - wantDur).Abs() > 50*time.Millisecond {
		t.Fatalf("%s: ffprobe duration %v, want %v", filepath.Base(path), d, wantDur)
	}
}

// loadH264 loads a testdata sample and loops it to d with Wall = t0 + DTS.
func loadH264(t testing.TB, name string, d time.Duration) (media.Track, []media.Frame) {
	t.Helper()
	track, frames, err := media.ReadH264File(filepath.Join("..", "testdata", name), 25)
	if err != nil {
		t.Fatal(err)
	}
	track.ID = 1
	return track, loop(frames, d, 1)
}

func loop(frames []media.Frame, d time.Duration, track uint8) []media.Frame {
	period := time.Duration(len(frames)) * (frames[1].DTS - frames[0].DTS)
	var out []media.Frame
	for n := 0; ; n++ {
		for _, f := range frames {
			f.DTS += time.Duration(n) * period
			f.PTS += time.Duration(n) * period
			if f.DTS >= d {
				return out
			}
			f.Wall = t0.Add(f.DTS)
			f.Track = track
			out = append(out, f)
		}
	}
}

// loadH265 reads testdata/h265.h265 (no B-frames) into 25 fps frames.
func loadH265(t *testing.T) (media.Track, []media.Frame) {
	t.Helper()
	data, err := os.ReadFile("../testdata/h265.h265")
	if err != nil {
		t.Fatal(err)
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(data); err != nil {
		t.Fatal(err)
	}
	track := media.Track{ID: 1, Codec: media.CodecH265}
	var frames []media.Frame
	var cur [][]byte
	key, vcl := false, false
	flush := func() {
		if vcl {
			i := len(frames)
			frames = append(frames, media.Frame{Track: 1, Keyframe: key, DTS: time.Duration(i) * 40 * time.Millisecond,
				PTS: time.Duration(i) * 40 * time.Millisecond, Wall: t0.Add(time.Duration(i) * 40 * time.Millisecond), Payload: avcc(cur...)})
		}
		cur, key, vcl = nil, false, false
	}
	for _, n := range nalus {
		n = bytes.TrimRight(n, "\x00")
		typ := (n[0] >> 1) & 0x3f
		switch {
		case typ == 32 || typ == 33 || typ == 34 || typ == 35 || typ == 39:
			if vcl {
				flush()
			}
			switch typ {
			case 32:
				track.VPS = n
			case 33:
				track.SPS = n
			case 34:
				track.PPS = n
			}
		case typ < 32:
			if vcl && n[2]&0x80 != 0 {
				flush()
			}
			cur = append(cur, n)
			vcl = true
			key = key || (typ >= 16 && typ <= 23)
		default:
			cur = append(cur, n)
		}
	}
	flush()
	return track, frames
}

func avcc(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

// mjpegFrames makes n distinct JPEG images at fps.
func mjpegFrames(t testing.TB, n, fps int, track uint8, w, h int) []media.Frame {
	t.Helper()
	var frames []media.Frame
	for i := range n {
		img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
		for y := range h {
			for x := range w {
				img.Y[y*img.YStride+x] = uint8(x + y + i*7)
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 50}); err != nil {
			t.Fatal(err)
		}
		d := time.Duration(i) * time.Second / time.Duration(fps)
		frames = append(frames, media.Frame{Track: track, Keyframe: true, DTS: d, PTS: d, Wall: t0.Add(d), Payload: buf.Bytes()})
	}
	return frames
}

// mergeByDTS interleaves two tracks' frames the way they arrive.
func mergeByDTS(a, b []media.Frame) []media.Frame {
	out := make([]media.Frame, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		if len(b) == 0 || (len(a) > 0 && a[0].DTS <= b[0].DTS) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}

type segmentFile struct {
	init  fmp4.Init
	parts fmp4.Parts
}

// readSegmentFile parses a segment: its init, then every fragment.
func readSegmentFile(t *testing.T, path string) segmentFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for off+8 <= len(data) && string(data[off+4:off+8]) != "moof" {
		off += int(binary.BigEndian.Uint32(data[off:]))
	}
	var sf segmentFile
	if err := sf.init.Unmarshal(bytes.NewReader(data[:off])); err != nil {
		t.Fatalf("%s: init: %v", path, err)
	}
	if err := sf.parts.Unmarshal(data[off:]); err != nil {
		t.Fatalf("%s: fragments: %v", path, err)
	}
	return sf
}

// runSegmenter feeds frames and returns the segments in order.
func runSegmenter(t testing.TB, cfg SegmenterConfig, frames []media.Frame) []Segment {
	t.Helper()
	var segs []Segment
	cfg.OnSegment = func(s Segment) error {
		segs = append(segs, s)
		return nil
	}
	s, err := NewSegmenter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := s.WriteFrame(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return segs
}

package media

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestProbeSegment(t *testing.T) {
	const total = 10 * time.Second
	for _, sample := range []string{"demo.h264", "bframes.h264"} {
		t.Run(sample, func(t *testing.T) {
			track, frames := loadSample(t, sample, total)
			segs := buildSegments(t, track, frames, 4*time.Second)
			if len(segs) < 2 {
				t.Fatalf("want several segments, got %d", len(segs))
			}
			for i, seg := range segs {
				end := joinT0.Add(total)
				if i+1 < len(segs) {
					end = segs[i+1].start
				}
				info, err := ProbeSegment(bytes.NewReader(seg.data))
				if err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				if want := end.Sub(seg.start); info.Duration != want || info.Codec != CodecH264 {
					t.Errorf("segment %d = %s %s, want %s h264", i, info.Duration, info.Codec, want)
				}
			}
		})
	}
}

func TestProbeSegmentBad(t *testing.T) {
	track, frames := loadSample(t, "demo.h264", 4*time.Second)
	seg := buildSegments(t, track, frames, 4*time.Second)[0]
	tests := map[string][]byte{
		"empty":            nil,
		"garbage":          []byte("this is not an mp4 file at all"),
		"init only cut":    seg.data[:100],
		"truncated mdat":   seg.data[:len(seg.data)-10],
		"moof before moov": append([]byte{0, 0, 0, 8, 'm', 'o', 'o', 'f'}, seg.data...),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if info, err := ProbeSegment(bytes.NewReader(data)); !errors.Is(err, ErrBadSegment) {
				t.Fatalf("ProbeSegment = %+v, %v; want ErrBadSegment", info, err)
			}
		})
	}
}

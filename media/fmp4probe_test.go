package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"
	"testing/iotest"
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

// A segment cut short anywhere reads as its whole fragments: the prefix
// up to the last one that is complete, never a torn tail.
func TestProbePartialSegment(t *testing.T) {
	track, frames := loadSample(t, "demo.h264", 4*time.Second)
	seg := buildSegments(t, track, frames, 4*time.Second)[0].data
	// Top-level boxes: ftyp, moov, then a moof and an mdat per second.
	var ends []int
	for off := 0; off < len(seg); {
		off += int(binary.BigEndian.Uint32(seg[off:]))
		ends = append(ends, off)
	}
	if len(ends) != 2+2*4 {
		t.Fatalf("segment has %d top-level boxes, want ftyp, moov and 4 fragments", len(ends))
	}
	fragEnd := func(n int) int { return ends[1+2*n] } // end of the n'th fragment's mdat
	tests := []struct {
		name     string
		data     []byte
		complete int
		dur      time.Duration
	}{
		{name: "whole", data: seg, complete: len(seg), dur: 4 * time.Second},
		{name: "torn mdat", data: seg[:len(seg)-10], complete: fragEnd(3), dur: 3 * time.Second},
		{name: "moof only", data: seg[:ends[len(ends)-2]], complete: fragEnd(3), dur: 3 * time.Second},
		{name: "torn moof", data: seg[:fragEnd(2)+20], complete: fragEnd(2), dur: 2 * time.Second},
		{name: "torn box header", data: seg[:fragEnd(1)+3], complete: fragEnd(1), dur: time.Second},
		{name: "garbled tail", data: append(slices.Clone(seg[:fragEnd(1)]), bytes.Repeat([]byte{0xff}, 64)...),
			complete: fragEnd(1), dur: time.Second},
		{name: "init only", data: seg[:ends[1]]},
		{name: "torn init", data: seg[:ends[1]-5]},
		{name: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, complete, err := ProbePartialSegment(bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if complete != int64(tc.complete) {
				t.Fatalf("complete = %d bytes, want %d", complete, tc.complete)
			}
			if complete == 0 {
				return
			}
			if info.Duration != tc.dur || info.Codec != CodecH264 {
				t.Errorf("info = %+v, want %s h264", info, tc.dur)
			}
			// The prefix is a segment ProbeSegment accepts, with the same info.
			whole, err := ProbeSegment(bytes.NewReader(tc.data[:complete]))
			if err != nil || whole != info {
				t.Errorf("ProbeSegment(prefix) = %+v, %v; want %+v", whole, err, info)
			}
		})
	}
}

// A read error is not mistaken for a torn tail.
func TestProbePartialSegmentReadError(t *testing.T) {
	track, frames := loadSample(t, "demo.h264", 2*time.Second)
	seg := buildSegments(t, track, frames, 4*time.Second)[0].data
	broken := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(seg), iotest.ErrReader(broken))
	if _, _, err := ProbePartialSegment(r); !errors.Is(err, broken) {
		t.Fatalf("ProbePartialSegment = %v, want the read error", err)
	}
}

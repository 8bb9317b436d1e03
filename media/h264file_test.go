package media

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

func nalTypes(t *testing.T, payload []byte) []h264.NALUType {
	t.Helper()
	if err := ValidateAVCC(payload); err != nil {
		t.Fatal(err)
	}
	var types []h264.NALUType
	for off := 0; off < len(payload); {
		n := int(binary.BigEndian.Uint32(payload[off:]))
		types = append(types, H264NALUType(payload[off+4:]))
		off += 4 + n
	}
	return types
}

func TestReadH264FileDemo(t *testing.T) {
	track, frames, err := ReadH264File("../testdata/demo.h264", 25)
	if err != nil {
		t.Fatal(err)
	}
	if track.Codec != CodecH264 || track.ClockRate != 90000 || !bytes.Equal(track.SPS, testH264SPS) || !bytes.Equal(track.PPS, testH264PPS) {
		t.Fatalf("track = %+v", track)
	}
	if err := ValidateTrack(track); err != nil {
		t.Fatal(err)
	}
	if len(frames) != 250 {
		t.Fatalf("%d frames, want 250 (10 s at 25 fps)", len(frames))
	}
	for i, f := range frames {
		if want := i%50 == 0; f.Keyframe != want {
			t.Fatalf("frame %d keyframe = %v, want %v", i, f.Keyframe, want)
		}
		if f.DTS != time.Duration(i)*40*time.Millisecond || f.PTS != f.DTS {
			t.Fatalf("frame %d dts %v pts %v", i, f.DTS, f.PTS)
		}
		for _, typ := range nalTypes(t, f.Payload) {
			if typ == h264.NALUTypeSPS || typ == h264.NALUTypePPS || typ == h264.NALUTypeAccessUnitDelimiter {
				t.Fatalf("frame %d carries nal type %d", i, typ)
			}
		}
	}
}

func TestReadH264FileBFrames(t *testing.T) {
	_, frames, err := ReadH264File("../testdata/bframes.h264", 25)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 100 {
		t.Fatalf("%d frames, want 100", len(frames))
	}
	reordered := 0
	pts := make([]time.Duration, len(frames))
	for i, f := range frames {
		if f.PTS < f.DTS {
			t.Fatalf("frame %d pts %v < dts %v", i, f.PTS, f.DTS)
		}
		if f.PTS != f.DTS {
			reordered++
		}
		pts[i] = f.PTS
	}
	if reordered == 0 {
		t.Fatal("no frame has pts != dts; sample should have B-frames")
	}
	// Presentation times must be every frame slot exactly once.
	slices.Sort(pts)
	for i := 1; i < len(pts); i++ {
		if pts[i]-pts[i-1] != 40*time.Millisecond {
			t.Fatalf("presentation times not evenly spaced at %d: %v", i, pts[i-1:i+1])
		}
	}
}

func TestParseH264AnnexBErrors(t *testing.T) {
	demo, err := os.ReadFile("../testdata/demo.h264")
	if err != nil {
		t.Fatal(err)
	}
	bfr, err := os.ReadFile("../testdata/bframes.h264")
	if err != nil {
		t.Fatal(err)
	}
	sc := []byte{0, 0, 0, 1}
	paramsOnly := slices.Concat(sc, testH264SPS, sc, testH264PPS)
	tests := map[string][]byte{
		"empty":            nil,
		"no start code":    []byte{0x65, 1, 2, 3},
		"parameters only":  paramsOnly,
		"sps changes":      slices.Concat(demo, bfr),
		"slice before sps": slices.Concat(sc, []byte{0x65, 0x88, 0x80}),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := ParseH264AnnexB(data, 25); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
	if _, _, err := ReadH264File("../testdata/missing.h264", 25); err == nil {
		t.Fatal("expected an error for a missing file")
	}
}

func TestParseH264AnnexBDropsLeadingNonIDR(t *testing.T) {
	data, err := os.ReadFile("../testdata/demo.h264")
	if err != nil {
		t.Fatal(err)
	}
	_, all, err := ParseH264AnnexB(data, 0) // fps from the SPS (none: 25)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the stream right after the first access unit's IDR slice: what
	// follows starts with non-IDR frames, which must be dropped.
	idr := bytes.Index(data, []byte{0, 0, 1, 0x65})
	next := bytes.Index(data[idr+4:], []byte{0, 0, 1})
	cut := slices.Concat([]byte{0, 0, 0, 1}, testH264SPS, []byte{0, 0, 0, 1}, testH264PPS, data[idr+4+next:])
	_, frames, err := ParseH264AnnexB(cut, 25)
	if err != nil {
		t.Fatal(err)
	}
	if !frames[0].Keyframe || frames[0].DTS != 0 {
		t.Fatalf("first frame %+v", summary(frames[0]))
	}
	if len(frames) != len(all)-50 {
		t.Fatalf("%d frames, want %d", len(frames), len(all)-50)
	}
}

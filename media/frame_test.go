package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"
)

func avcc(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	wall := time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC)
	tests := []struct {
		name string
		f    Frame
	}{
		{"keyframe", Frame{Track: 1, Keyframe: true, DTS: 0, PTS: 80 * time.Millisecond, Wall: wall, Payload: avcc([]byte{0x65, 1, 2, 3})}},
		{"delta frame", Frame{Track: 0, DTS: time.Hour, PTS: time.Hour + time.Millisecond, Wall: wall, Payload: []byte{9}}},
		{"zero wall", Frame{Track: 255, Keyframe: true, DTS: 5, PTS: 5, Payload: []byte("jpeg")}},
		{"max timestamps", Frame{Track: 3, DTS: math.MaxInt64, PTS: math.MaxInt64, Wall: time.Unix(0, math.MaxInt64), Payload: []byte{1}}},
		{"max payload", Frame{Track: 2, Payload: make([]byte, MaxFramePayload)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := MarshalFrame(tt.f)
			if len(b) != FrameHeaderSize+len(tt.f.Payload) {
				t.Fatalf("encoded %d bytes, want %d", len(b), FrameHeaderSize+len(tt.f.Payload))
			}
			got, err := UnmarshalFrame(b)
			if err != nil {
				t.Fatalf("UnmarshalFrame: %v", err)
			}
			assertFrameEqual(t, got, tt.f)
			// AppendFrame onto existing bytes must leave them alone.
			prefix := []byte("prefix")
			b2 := AppendFrame(prefix, tt.f)
			if !bytes.Equal(b2[:len(prefix)], []byte("prefix")) || !bytes.Equal(b2[len(prefix):], b) {
				t.Fatal("AppendFrame differs from MarshalFrame")
			}
		})
	}
}

func assertFrameEqual(t *testing.T, got, want Frame) {
	t.Helper()
	if got.Track != want.Track || got.Keyframe != want.Keyframe || got.DTS != want.DTS || got.PTS != want.PTS ||
		!got.Wall.Equal(want.Wall) || got.Wall.IsZero() != want.Wall.IsZero() || !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("frame mismatch:\n got %+v\nwant %+v", summary(got), summary(want))
	}
}

func summary(f Frame) Frame {
	if len(f.Payload) > 16 {
		f.Payload = f.Payload[:16]
	}
	return f
}

func TestUnmarshalFrameErrors(t *testing.T) {
	valid := MarshalFrame(Frame{Track: 1, Keyframe: true, DTS: 40, PTS: 80, Wall: time.Unix(1700000000, 0), Payload: []byte{1, 2, 3}})
	mutate := func(fn func(b []byte) []byte) []byte {
		return fn(bytes.Clone(valid))
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"truncated header", valid[:FrameHeaderSize-1]},
		{"header only", mutate(func(b []byte) []byte { return b[:FrameHeaderSize] })},
		{"wrong magic", mutate(func(b []byte) []byte { b[0] = 0x00; return b })},
		{"next version magic", mutate(func(b []byte) []byte { b[0] = FrameMagic + 1; return b })},
		{"unknown flag", mutate(func(b []byte) []byte { b[2] |= 0x80; return b })},
		{"negative dts", mutate(func(b []byte) []byte { binary.BigEndian.PutUint64(b[3:], uint64(1)<<63); return b })},
		{"negative pts", mutate(func(b []byte) []byte { binary.BigEndian.PutUint64(b[11:], math.MaxUint64); return b })},
		{"payload shorter than length", mutate(func(b []byte) []byte { return b[:len(b)-1] })},
		{"payload longer than length", mutate(func(b []byte) []byte { return append(b, 0) })},
		{"zero length", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[27:], 0); return b[:FrameHeaderSize] })},
		{"length over max", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[27:], MaxFramePayload+1); return b })},
		{"length max uint32", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[27:], math.MaxUint32); return b })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := UnmarshalFrame(tt.b)
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("err = %v, want ErrBadFrame", err)
			}
		})
	}
	if _, err := UnmarshalFrame(valid); err != nil {
		t.Fatalf("valid frame: %v", err)
	}
}

func TestMarshalFrameWallOutOfRange(t *testing.T) {
	f := Frame{Payload: []byte{1}, Wall: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}
	got, err := UnmarshalFrame(MarshalFrame(f))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Wall.IsZero() {
		t.Fatalf("wall = %v, want zero for an unencodable time", got.Wall)
	}
}

func TestValidateAVCC(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		ok      bool
	}{
		{"one nalu", avcc([]byte{0x65, 0x88}), true},
		{"three nalus", avcc([]byte{0x06, 1}, []byte{0x65}, []byte{0x41, 2, 3}), true},
		{"empty", nil, false},
		{"short length", []byte{0, 0, 1}, false},
		{"zero-length nalu", []byte{0, 0, 0, 0}, false},
		{"length past end", []byte{0, 0, 0, 5, 1, 2}, false},
		{"trailing garbage", append(avcc([]byte{0x65}), 0, 0), false},
		{"annex-b start code", []byte{0, 0, 0, 1, 0x65, 0x88, 0x84}, false},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateAVCC(tt.payload)
			if tt.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrBadFrame) {
				t.Fatalf("err = %v, want ErrBadFrame", err)
			}
		})
	}
}

// FuzzUnmarshalFrame: no input may panic, and every accepted input must
// re-encode to exactly the same bytes (the encoding is canonical).
func FuzzUnmarshalFrame(f *testing.F) {
	f.Add(MarshalFrame(Frame{Track: 1, Keyframe: true, DTS: 0, PTS: 40, Wall: time.Unix(1700000000, 5), Payload: avcc([]byte{0x65, 0x88})}))
	f.Add(MarshalFrame(Frame{Track: 2, DTS: time.Second, PTS: time.Second, Payload: []byte{0xff, 0xd8, 0xff, 0xd9}}))
	f.Add([]byte{FrameMagic})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := UnmarshalFrame(b)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error does not wrap ErrBadFrame: %v", err)
			}
			return
		}
		if fr.DTS < 0 || fr.PTS < 0 || len(fr.Payload) == 0 || len(fr.Payload) > MaxFramePayload {
			t.Fatalf("accepted invalid frame %+v", summary(fr))
		}
		if again := MarshalFrame(fr); !bytes.Equal(again, b) {
			t.Fatalf("round trip changed bytes:\n in %x\nout %x", b, again)
		}
		_ = ValidateAVCC(fr.Payload) // must not panic on arbitrary payloads
	})
}

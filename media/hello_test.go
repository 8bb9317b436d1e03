package media

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Parameter sets of testdata/demo.h264 and testdata/h265.h265.
var (
	testH264SPS = mustHex("674d401ed900a02ff97011000003000100000300320f162e48")
	testH264PPS = mustHex("68ebccb2")
	testH265VPS = mustHex("40010c01ffff01600000030090000003000003003c928090")
	testH265SPS = mustHex("42010101600000030090000003000003003ca00a080b9f7964a924caf0168080000003008000000c84")
	testH265PPS = mustHex("4401c172b46240")
)

func TestReadHello(t *testing.T) {
	h264 := Track{ID: 1, Codec: CodecH264, ClockRate: 90000, SPS: testH264SPS, PPS: testH264PPS}
	h265 := Track{ID: 2, Codec: CodecH265, VPS: testH265VPS, SPS: testH265SPS, PPS: testH265PPS}
	mjpeg := Track{ID: 3, Codec: CodecMJPEG}
	hello := func(edit func(h *Hello)) []byte {
		h := Hello{Version: ProtocolVersion, Token: "tok", Tracks: []Track{h264}}
		if edit != nil {
			edit(&h)
		}
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error // nil: valid
	}{
		{"h264", hello(nil), nil},
		{"all codecs", hello(func(h *Hello) { h.Tracks = []Track{h264, h265, mjpeg} }), nil},
		{"four tracks", hello(func(h *Hello) {
			m := mjpeg
			m.ID = 4
			h.Tracks = []Track{h264, h265, mjpeg, m}
		}), nil},
		{"negative clock", hello(func(h *Hello) { h.Clock = -1 }), ErrBadHello},
		{"unknown fields ignored", []byte(`{"version":1,"token":"t","tracks":[{"id":0,"codec":"mjpeg"}],"future":true}`), nil},
		{"not json", []byte("hello"), ErrBadHello},
		{"empty", nil, ErrBadHello},
		{"too large", []byte(`{"token":"` + strings.Repeat("x", MaxHelloSize) + `"}`), ErrBadHello},
		{"version 0", hello(func(h *Hello) { h.Version = 0 }), ErrUnsupportedVersion},
		{"version 2", hello(func(h *Hello) { h.Version = 2 }), ErrUnsupportedVersion},
		{"empty token", hello(func(h *Hello) { h.Token = "" }), ErrBadHello},
		{"no tracks", hello(func(h *Hello) { h.Tracks = nil }), ErrBadHello},
		{"five tracks", hello(func(h *Hello) {
			for i := range 5 {
				h.Tracks = append(h.Tracks, Track{ID: uint8(10 + i), Codec: CodecMJPEG})
			}
		}), ErrBadHello},
		{"duplicate ids", hello(func(h *Hello) { m := mjpeg; m.ID = h264.ID; h.Tracks = []Track{h264, m} }), ErrBadHello},
		{"unknown codec", hello(func(h *Hello) { h.Tracks = []Track{{ID: 1, Codec: "vp8"}} }), ErrBadHello},
		{"h264 without sps", hello(func(h *Hello) { h.Tracks = []Track{{ID: 1, Codec: CodecH264, PPS: testH264PPS}} }), ErrBadHello},
		{"h264 without pps", hello(func(h *Hello) { h.Tracks = []Track{{ID: 1, Codec: CodecH264, SPS: testH264SPS}} }), ErrBadHello},
		{"h264 sps/pps swapped", hello(func(h *Hello) { h.Tracks = []Track{{ID: 1, Codec: CodecH264, SPS: testH264PPS, PPS: testH264SPS}} }), ErrBadHello},
		{"h264 garbage sps", hello(func(h *Hello) { h.Tracks = []Track{{ID: 1, Codec: CodecH264, SPS: []byte{0x67}, PPS: testH264PPS}} }), ErrBadHello},
		{"h265 without vps", hello(func(h *Hello) { x := h265; x.VPS = nil; h.Tracks = []Track{x} }), ErrBadHello},
		{"h265 garbage sps", hello(func(h *Hello) { x := h265; x.SPS = []byte{0x42, 0x01}; h.Tracks = []Track{x} }), ErrBadHello},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ReadHello(tt.b)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if h.Token == "" || len(h.Tracks) == 0 {
					t.Fatalf("hello not decoded: %+v", h)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// The clock is optional: an older agent's Hello has none.
func TestReadHelloClock(t *testing.T) {
	for b, want := range map[string]int64{
		`{"version":1,"token":"t","tracks":[{"id":0,"codec":"mjpeg"}],"clock":1748779200123456789}`: 1748779200123456789,
		`{"version":1,"token":"t","tracks":[{"id":0,"codec":"mjpeg"}]}`:                             0,
	} {
		h, err := ReadHello([]byte(b))
		if err != nil || h.Clock != want {
			t.Errorf("ReadHello(%s) = clock %d, %v; want %d", b, h.Clock, err, want)
		}
	}
}

func TestTrackTimeScale(t *testing.T) {
	if got := (Track{}).TimeScale(); got != DefaultClockRate {
		t.Fatalf("default timescale %d", got)
	}
	if got := (Track{ClockRate: 1000}).TimeScale(); got != 1000 {
		t.Fatalf("timescale %d", got)
	}
}

// FuzzReadHello: arbitrary agent input reaches the parameter-set parsers,
// which must not panic.
func FuzzReadHello(f *testing.F) {
	good, _ := json.Marshal(Hello{Version: 1, Token: "t", Tracks: []Track{
		{ID: 1, Codec: CodecH264, SPS: testH264SPS, PPS: testH264PPS},
		{ID: 2, Codec: CodecH265, VPS: testH265VPS, SPS: testH265SPS, PPS: testH265PPS},
	}})
	f.Add(good)
	f.Add([]byte(`{"version":1,"token":"t","tracks":[{"id":1,"codec":"h264","sps":"Z0IAKeNQ","pps":"aM48gA=="}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadHello(b)
		if err == nil && (h.Token == "" || len(h.Tracks) == 0 || len(h.Tracks) > MaxTracks) {
			t.Fatalf("accepted invalid hello %+v", h)
		}
	})
}

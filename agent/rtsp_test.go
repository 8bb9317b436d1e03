package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/opennvr/vms/democam"
	"github.com/opennvr/vms/media"
)

func startCamera(t *testing.T, sample string, opts ...democam.Option) *democam.Camera {
	t.Helper()
	cam, err := democam.Start(t.Context(), "127.0.0.1:0", "/live", sample, opts...)
	if err != nil {
		t.Fatalf("start demo camera: %v", err)
	}
	t.Cleanup(cam.Close)
	return cam
}

func withCredentials(raw, user, pass string) string {
	u, _ := url.Parse(raw)
	u.User = url.UserPassword(user, pass)
	return u.String()
}

// checkH264Frames asserts what every consumer of an RTSPSource relies on.
func checkH264Frames(t *testing.T, got collected, want media.Track) {
	t.Helper()
	if got.err != nil {
		t.Fatalf("run: %v", got.err)
	}
	if len(got.tracks) != 1 || len(got.tracks[0]) != 1 {
		t.Fatalf("tracks announced %d times: %+v", len(got.tracks), got.tracks)
	}
	tr := got.tracks[0][0]
	if tr.Codec != media.CodecH264 || tr.ClockRate != 90000 {
		t.Errorf("track = %s@%d, want h264@90000", tr.Codec, tr.ClockRate)
	}
	if !bytes.Equal(tr.SPS, want.SPS) || !bytes.Equal(tr.PPS, want.PPS) {
		t.Errorf("track parameter sets differ from the sample's")
	}
	if err := media.ValidateTrack(tr); err != nil {
		t.Errorf("track invalid: %v", err)
	}
	if len(got.frames) == 0 {
		t.Fatal("no frames")
	}
	if !got.frames[0].Keyframe {
		t.Error("first frame is not a keyframe")
	}
	if got.frames[0].DTS != 0 {
		t.Errorf("first DTS = %v, want 0", got.frames[0].DTS)
	}
	for i, f := range got.frames {
		if i > 0 && f.DTS <= got.frames[i-1].DTS {
			t.Fatalf("frame %d: DTS %v not after %v", i, f.DTS, got.frames[i-1].DTS)
		}
		if f.PTS < f.DTS {
			t.Errorf("frame %d: PTS %v < DTS %v", i, f.PTS, f.DTS)
		}
		if f.Wall.IsZero() {
			t.Errorf("frame %d: no wall clock", i)
		}
		if err := media.ValidateAVCC(f.Payload); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		for _, typ := range naluTypes(f.Payload) {
			switch typ {
			case h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeAccessUnitDelimiter:
				t.Fatalf("frame %d carries NAL unit type %v", i, typ)
			}
		}
		if f.Keyframe != slices.Contains(naluTypes(f.Payload), h264.NALUTypeIDR) {
			t.Errorf("frame %d: keyframe flag %v disagrees with its NAL units", i, f.Keyframe)
		}
	}
}

func TestRTSPSourceH265(t *testing.T) {
	for _, transport := range []string{TransportTCP, TransportUDPOnly} {
		t.Run(transport, func(t *testing.T) {
			cam := startCamera(t, "../testdata/h265.h265", democam.WithFPS(250))
			log, _ := captureLogger()
			got := collect(t, &RTSPSource{URL: cam.URL(), Transport: transport, Logger: log}, 60, 15*time.Second)
			if got.err != nil {
				t.Fatalf("run: %v", got.err)
			}
			if len(got.tracks) != 1 || len(got.tracks[0]) != 1 {
				t.Fatalf("tracks = %+v", got.tracks)
			}
			if err := media.ValidateTrack(got.tracks[0][0]); err != nil || got.tracks[0][0].Codec != media.CodecH265 {
				t.Fatalf("track %+v: %v", got.tracks[0][0], err)
			}
			if !got.frames[0].Keyframe || got.frames[0].DTS != 0 {
				t.Errorf("first frame: key=%v dts=%v", got.frames[0].Keyframe, got.frames[0].DTS)
			}
			keys := 0
			for i, f := range got.frames {
				if i > 0 && f.DTS <= got.frames[i-1].DTS {
					t.Fatalf("frame %d: DTS not increasing", i)
				}
				if err := media.ValidateAVCC(f.Payload); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				for _, typ := range h265Types(f.Payload) {
					if typ >= h265.NALUType_VPS_NUT && typ <= h265.NALUType_AUD_NUT {
						t.Fatalf("frame %d carries parameter set or AUD (type %d)", i, typ)
					}
				}
				if f.Keyframe {
					keys++
				}
			}
			if keys < 2 {
				t.Errorf("%d keyframes in 60 frames of a 50-frame GOP sample", keys)
			}
		})
	}
}

func h265Types(avcc []byte) []h265.NALUType {
	var out []h265.NALUType
	for len(avcc) >= 4 {
		n := binary.BigEndian.Uint32(avcc)
		avcc = avcc[4:]
		if n == 0 || int(n) > len(avcc) {
			break
		}
		out = append(out, media.H265NALUType(avcc))
		avcc = avcc[n:]
	}
	return out
}

func naluTypes(avcc []byte) []h264.NALUType {
	var out []h264.NALUType
	for len(avcc) >= 4 {
		n := binary.BigEndian.Uint32(avcc)
		avcc = avcc[4:]
		if n == 0 || int(n) > len(avcc) {
			break
		}
		out = append(out, media.H264NALUType(avcc))
		avcc = avcc[n:]
	}
	return out
}

func TestRTSPSource(t *testing.T) {
	want, _, err := media.ReadH264File(demoSample, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		sample        string
		transport     string
		opts          []democam.Option
		wantTransport string
		wantReorder   bool // some PTS > DTS
	}{
		{name: "tcp default", sample: demoSample, wantTransport: "TCP"},
		{name: "udp only", sample: demoSample, transport: TransportUDPOnly, wantTransport: "UDP"},
		{name: "udp with fallback", sample: demoSample, transport: TransportUDP, wantTransport: "UDP"},
		{name: "params only in sdp", sample: demoSample, transport: TransportTCP,
			opts: []democam.Option{democam.WithoutInBandParams()}, wantTransport: "TCP"},
		{name: "params only in-band", sample: demoSample, transport: TransportTCP,
			opts: []democam.Option{democam.WithoutSDPParams()}, wantTransport: "TCP"},
		{name: "b-frames", sample: "../testdata/bframes.h264", wantTransport: "TCP", wantReorder: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sampleTrack := want
			if tc.sample != demoSample {
				sampleTrack, _, err = media.ReadH264File(tc.sample, 0)
				if err != nil {
					t.Fatal(err)
				}
			}
			// 250 fps: a GOP lasts 0.2 s, so the test waits little for
			// the first keyframe.
			cam := startCamera(t, tc.sample, append(tc.opts, democam.WithFPS(250))...)
			log, _ := captureLogger()
			src := &RTSPSource{URL: cam.URL(), Transport: tc.transport, Logger: log}
			got := collect(t, src, 120, 15*time.Second)
			checkH264Frames(t, got, sampleTrack)
			reordered := slices.ContainsFunc(got.frames, func(f media.Frame) bool { return f.PTS != f.DTS })
			if reordered != tc.wantReorder {
				t.Errorf("frames with PTS != DTS: %v, want %v", reordered, tc.wantReorder)
			}
			if tr := cam.Transports(); len(tr) != 1 || tr[0] != tc.wantTransport {
				t.Errorf("camera saw transports %v, want [%s]", tr, tc.wantTransport)
			}
		})
	}
}

// TestRTSPSourceLoops crosses the sample's loop boundary: timestamps must
// keep increasing and PTS must advance at the real frame rate.
func TestRTSPSourceLoops(t *testing.T) {
	// 500 fps: the 250-frame sample loops every 0.5 s.
	cam := startCamera(t, demoSample, democam.WithFPS(500))
	src := &RTSPSource{URL: cam.URL()}
	got := collect(t, src, 600, 15*time.Second)
	want, _, _ := media.ReadH264File(demoSample, 500)
	checkH264Frames(t, got, want)
	last := got.frames[len(got.frames)-1]
	if d := last.DTS - got.frames[0].DTS; d < 1100*time.Millisecond || d > 1300*time.Millisecond {
		t.Errorf("600 frames at 500 fps span %v, want ≈1.2 s", d)
	}
}

func TestRTSPSourceAuth(t *testing.T) {
	const user, pass = "camadmin", "s3cr3t-Passw0rd"
	want, _, err := media.ReadH264File(demoSample, 0)
	if err != nil {
		t.Fatal(err)
	}
	cam := startCamera(t, demoSample, democam.WithAuth(user, pass), democam.WithFPS(250))

	tests := []struct {
		name      string
		user      string
		pass      string
		transport string
		wantErr   bool
	}{
		{name: "wrong password", user: user, pass: "wrong-" + pass, wantErr: true},
		{name: "no credentials", wantErr: true},
		{name: "right password tcp", user: user, pass: pass},
		{name: "right password udp", user: user, pass: pass, transport: TransportUDPOnly},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := captureLogger()
			u := cam.URL()
			if tc.user != "" {
				u = withCredentials(u, tc.user, tc.pass)
			}
			src := &RTSPSource{URL: u, Transport: tc.transport, Logger: log}
			got := collect(t, src, 30, 10*time.Second)
			if tc.wantErr {
				if got.err == nil || len(got.frames) > 0 {
					t.Fatalf("got %d frames, err %v; want an auth error", len(got.frames), got.err)
				}
				t.Logf("error: %v", got.err)
				if strings.Contains(got.err.Error(), context.DeadlineExceeded.Error()) {
					t.Fatalf("error came from the timeout, not the camera: %v", got.err)
				}
			} else {
				checkH264Frames(t, got, want)
			}
			out := logs.String()
			if got.err != nil {
				out += got.err.Error()
			}
			for _, secret := range []string{pass, user} {
				if strings.Contains(out, secret) {
					t.Errorf("credentials leaked into logs or errors:\n%s", out)
				}
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rtsp://admin:pw@10.0.0.2:554/s1", "rtsp://redacted@10.0.0.2:554/s1"},
		{"rtsp://10.0.0.2/s1", "rtsp://10.0.0.2/s1"},
		{"http://u@cam/mjpg", "http://redacted@cam/mjpg"},
		{"rtsp://a:b@[::1", "<invalid url>"},
	}
	for _, tc := range tests {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestH264StreamParams feeds access units straight into the H.264 stage.
func TestH264StreamParams(t *testing.T) {
	trackA, framesA, err := media.ReadH264File(demoSample, 0)
	if err != nil {
		t.Fatal(err)
	}
	trackB, framesB, err := media.ReadH264File("../testdata/bframes.h264", 0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(trackA.SPS, trackB.SPS) {
		t.Fatal("samples share an SPS; the test needs two")
	}
	nalus := func(f media.Frame) [][]byte {
		var out [][]byte
		p := f.Payload
		for len(p) >= 4 {
			n := binary.BigEndian.Uint32(p)
			out = append(out, p[4:4+n])
			p = p[4+n:]
		}
		return out
	}
	aud := []byte{0x09, 0xf0}

	// No parameter sets in the SDP.
	s, err := newH264Stream(&format.H264{PacketizationMode: 1})
	if err != nil {
		t.Fatal(err)
	}
	if fr, err := s.accessUnit(nalus(framesA[1]), 0); fr != nil || err != nil {
		t.Fatalf("P-frame before any IDR: %v %v, want dropped silently", fr, err)
	}
	if _, err := s.accessUnit(nalus(framesA[0]), 0); !errors.Is(err, errNoParams) {
		t.Fatalf("IDR without parameter sets: err %v, want errNoParams", err)
	}
	// In-band SPS/PPS and an AUD arrive with the IDR.
	au := append([][]byte{aud, trackA.SPS, trackA.PPS}, nalus(framesA[0])...)
	fr, err := s.accessUnit(au, 3000)
	if err != nil || fr == nil || !fr.keyframe {
		t.Fatalf("IDR with in-band params: %+v %v", fr, err)
	}
	if types := naluTypes(fr.payload); slices.Contains(types, h264.NALUTypeAccessUnitDelimiter) || slices.Contains(types, h264.NALUTypeSPS) {
		t.Errorf("payload keeps %v", types)
	}
	tr := s.track()
	if !bytes.Equal(tr.SPS, trackA.SPS) || !bytes.Equal(tr.PPS, trackA.PPS) {
		t.Error("track does not carry the in-band parameter sets")
	}
	if s.paramsChanged() {
		t.Error("paramsChanged right after track()")
	}
	// The same SPS again changes nothing; another one does.
	if _, err := s.accessUnit(append([][]byte{trackA.SPS, trackA.PPS}, nalus(framesA[0])...), 6000); err != nil || s.paramsChanged() {
		t.Errorf("repeated SPS: err %v changed %v", err, s.paramsChanged())
	}
	if _, err := s.accessUnit(append([][]byte{trackB.SPS, trackB.PPS}, nalus(framesB[0])...), 9000); err != nil || !s.paramsChanged() {
		t.Errorf("new SPS: err %v changed %v, want changed", err, s.paramsChanged())
	}
}

package democam

import (
	"bufio"
	"bytes"
	"context"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
)

const demoSample = "../testdata/demo.h264"

// readAUs plays the camera's stream and returns n access units with their
// RTP timestamps, plus the format from the SDP.
func readAUs(t *testing.T, rawURL string, n int) (*format.H264, [][][]byte, []uint32, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
	if err := c.Start2(); err != nil {
		return nil, nil, nil, err
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		return nil, nil, nil, err
	}
	var forma *format.H264
	medi := desc.FindFormat(&forma)
	if medi == nil {
		t.Fatal("no h264 in the SDP")
	}
	dec, err := forma.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return nil, nil, nil, err
	}
	type au struct {
		nalus [][]byte
		ts    uint32
	}
	ch := make(chan au, 1000)
	c.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		nalus, err := dec.Decode(pkt)
		if err == nil {
			select {
			case ch <- au{nalus, pkt.Timestamp}:
			default:
			}
		}
	})
	if _, err := c.Play(nil); err != nil {
		return nil, nil, nil, err
	}
	var aus [][][]byte
	var tss []uint32
	timeout := time.After(10 * time.Second)
	for len(aus) < n {
		select {
		case a := <-ch:
			aus = append(aus, a.nalus)
			tss = append(tss, a.ts)
		case <-timeout:
			t.Fatalf("got %d access units, want %d", len(aus), n)
		}
	}
	return forma, aus, tss, nil
}

func TestCameraRTSP(t *testing.T) {
	tests := []struct {
		name       string
		opts       []Option
		wantSDP    bool
		wantInBand bool
	}{
		{name: "default", wantSDP: true, wantInBand: true},
		{name: "sdp only", opts: []Option{WithoutInBandParams()}, wantSDP: true},
		{name: "in-band only", opts: []Option{WithoutSDPParams()}, wantInBand: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// 500 fps: the 250-frame sample loops every 0.5 s.
			cam, err := Start(t.Context(), "127.0.0.1:0", "demo", demoSample, append(tc.opts, WithFPS(500))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cam.Close()
			forma, aus, tss, err := readAUs(t, cam.URL(), 400)
			if err != nil {
				t.Fatal(err)
			}
			if got := forma.SPS != nil && forma.PPS != nil; got != tc.wantSDP {
				t.Errorf("SPS/PPS in SDP = %v, want %v", got, tc.wantSDP)
			}
			inBand := false
			for i, au := range aus {
				if h264.IsRandomAccess(au) {
					typ := h264.NALUType(au[0][0] & 0x1f)
					if typ == h264.NALUTypeSPS {
						inBand = true
					}
				}
				// 500 fps at 90 kHz: 180 ticks a frame, across loops too.
				if i > 0 && tss[i]-tss[i-1] != 180 {
					t.Fatalf("access unit %d: timestamp step %d, want 180", i, tss[i]-tss[i-1])
				}
			}
			if inBand != tc.wantInBand {
				t.Errorf("SPS in-band before IDR = %v, want %v", inBand, tc.wantInBand)
			}
			if tr := cam.Transports(); len(tr) != 1 || tr[0] != "TCP" {
				t.Errorf("transports = %v", tr)
			}
		})
	}
}

func TestCameraAuth(t *testing.T) {
	cam, err := Start(t.Context(), "127.0.0.1:0", "/auth", demoSample, WithAuth("u", "p"), WithFPS(250))
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	if _, _, _, err := readAUs(t, cam.URL(), 1); err == nil {
		t.Error("no credentials: want an error")
	}
	u, _ := url.Parse(cam.URL())
	u.User = url.UserPassword("u", "p")
	if _, _, _, err := readAUs(t, u.String(), 5); err != nil {
		t.Errorf("right credentials: %v", err)
	}
	u.Path = "/other"
	if _, _, _, err := readAUs(t, u.String(), 1); err == nil {
		t.Error("wrong path: want an error")
	}
}

func TestCameraStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cam, err := Start(ctx, "127.0.0.1:0", "demo", demoSample)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(cam.URL())
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("camera still accepts connections after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cam.Close() // idempotent
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(t.Context(), "127.0.0.1:0", "x", "does-not-exist.h264"); err == nil {
		t.Error("missing sample: want an error")
	}
	if _, err := Start(t.Context(), "not-an-address", "x", demoSample); err == nil {
		t.Error("bad address: want an error")
	}
}

func TestMJPEGCamera(t *testing.T) {
	for _, noLength := range []bool{false, true} {
		opts := []Option{WithAuth("v", "pw"), WithFrameRate(50)}
		if noLength {
			opts = append(opts, WithoutContentLength())
		}
		cam, err := StartMJPEG(t.Context(), "127.0.0.1:0", "/mjpg", opts...)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(cam.URL())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("no credentials: status %d, want 401", resp.StatusCode)
		}

		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, cam.URL(), nil)
		req.SetBasicAuth("v", "pw")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/x-mixed-replace" {
			t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(bufio.NewReader(resp.Body), params["boundary"])
		for i := range 3 {
			part, err := mr.NextPart()
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			if got := part.Header.Get("Content-Length") != ""; got == noLength {
				t.Errorf("Content-Length present = %v with noLength %v", got, noLength)
			}
			img, err := io.ReadAll(part)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(img))
			if err != nil || cfg.Width != 64 || cfg.Height != 48 {
				t.Fatalf("part %d: %v %+v", i, err, cfg)
			}
		}
		resp.Body.Close()
		cam.Close()
		if resp, err := http.Get(cam.URL()); err == nil {
			resp.Body.Close()
			t.Error("server still answers after Close")
		}
	}
}

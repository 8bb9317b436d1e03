package agent

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opennvr/vms/democam"
	"github.com/opennvr/vms/media"
)

func TestPartReader(t *testing.T) {
	jpegA := "\xff\xd8A\r\n--notaboundary\r\nbinary\n\xff\xd9"
	jpegB := "\xff\xd8B\xff\xd9"
	tests := []struct {
		name     string
		boundary string
		body     string
		want     []string
	}{
		{
			name:     "content length",
			boundary: "frame",
			body: "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + strconv.Itoa(len(jpegA)) + "\r\n\r\n" + jpegA + "\r\n" +
				"--frame\r\nContent-Length: 5\r\n\r\n" + jpegB + "\r\n",
			want: []string{jpegA, jpegB},
		},
		{
			name:     "no content length",
			boundary: "frame",
			body: "--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpegA + "\r\n" +
				"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpegB + "\r\n--frame--\r\n",
			want: []string{jpegA, jpegB},
		},
		{
			name:     "boundary parameter with dashes, bare LF, preamble",
			boundary: "--myboundary",
			body: "preamble\n\n--myboundary\nContent-Type: image/jpeg\n\n" + jpegB + "\n" +
				"--myboundary\nContent-Type: image/jpeg\n\n" + jpegB + "\n--myboundary\n",
			want: []string{jpegB, jpegB},
		},
		{
			name:     "closing boundary",
			boundary: "b",
			body:     "--b\r\nContent-Length: 5\r\n\r\n" + jpegB + "\r\n--b--\r\n--b\r\nContent-Length: 5\r\n\r\n" + jpegB,
			want:     []string{jpegB},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pr := newPartReader(strings.NewReader(tc.body), tc.boundary, 1<<20)
			var got []string
			for {
				part, err := pr.next()
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					break
				}
				if err != nil {
					t.Fatalf("part %d: %v", len(got), err)
				}
				got = append(got, string(part))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d parts %q, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("part %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestPartReaderLimit(t *testing.T) {
	body := "--b\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n--b\r\n"
	pr := newPartReader(strings.NewReader(body), "b", 1000)
	if _, err := pr.next(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("oversized part: err = %v, want a size error", err)
	}
}

func TestMJPEGSource(t *testing.T) {
	const user, pass = "viewer", "mjpeg-Secret-9"
	tests := []struct {
		name    string
		opts    []democam.Option
		creds   bool
		pass    string
		wantErr bool
	}{
		{name: "content length", opts: []democam.Option{democam.WithFrameRate(50)}},
		{name: "no content length", opts: []democam.Option{democam.WithFrameRate(50), democam.WithoutContentLength()}},
		{name: "basic auth", opts: []democam.Option{democam.WithFrameRate(50), democam.WithAuth(user, pass)}, creds: true, pass: pass},
		{name: "wrong password", opts: []democam.Option{democam.WithAuth(user, pass)}, creds: true, pass: "nope-" + pass, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cam, err := democam.StartMJPEG(t.Context(), "127.0.0.1:0", "/video.mjpg", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cam.Close)
			u := cam.URL()
			if tc.creds {
				u = withCredentials(u, user, tc.pass)
			}
			log, logs := captureLogger()
			got := collect(t, &MJPEGSource{URL: u, Logger: log}, 12, 10*time.Second)
			if tc.wantErr {
				if got.err == nil || len(got.frames) > 0 {
					t.Fatalf("got %d frames, err %v; want an error", len(got.frames), got.err)
				}
			} else {
				checkMJPEGFrames(t, got)
			}
			out := logs.String()
			if got.err != nil {
				out += got.err.Error()
			}
			if strings.Contains(out, pass) || strings.Contains(out, user) {
				t.Errorf("credentials leaked:\n%s", out)
			}
		})
	}
}

func checkMJPEGFrames(t *testing.T, got collected) {
	t.Helper()
	if got.err != nil {
		t.Fatalf("run: %v", got.err)
	}
	if len(got.tracks) != 1 || len(got.tracks[0]) != 1 || got.tracks[0][0].Codec != media.CodecMJPEG {
		t.Fatalf("tracks = %+v, want one mjpeg track", got.tracks)
	}
	if len(got.frames) != 12 {
		t.Fatalf("got %d frames", len(got.frames))
	}
	distinct := map[string]bool{}
	for i, f := range got.frames {
		if !f.Keyframe {
			t.Errorf("frame %d is not a keyframe", i)
		}
		if !bytes.HasPrefix(f.Payload, []byte{0xff, 0xd8}) || !bytes.HasSuffix(f.Payload, []byte{0xff, 0xd9}) {
			t.Fatalf("frame %d is not a whole JPEG (%d bytes)", i, len(f.Payload))
		}
		if i > 0 && f.DTS < got.frames[i-1].DTS {
			t.Errorf("frame %d: DTS went backwards", i)
		}
		distinct[string(f.Payload)] = true
	}
	if len(distinct) < 2 {
		t.Error("all images identical; the stream is not moving")
	}
}

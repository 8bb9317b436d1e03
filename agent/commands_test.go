package agent

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opennvr/vms/control"
)

var testJPEG = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9")

// snapshotCamera serves testJPEG at /snap.jpg behind basic or digest auth.
func snapshotCamera(t *testing.T, digest bool) *httptest.Server {
	t.Helper()
	const user, pass, realm, nonce = "viewer", "p@ss word", "cam", "abc123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/snap.jpg" {
			http.NotFound(w, r)
			return
		}
		if digest {
			p := parseAuthParams(strings.TrimPrefix(r.Header.Get("Authorization"), "Digest "))
			h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
			want := h(h(user+":"+realm+":"+pass) + ":" + nonce + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + h("GET:"+r.URL.RequestURI()))
			if p["username"] != user || p["response"] != want || p["opaque"] != "op" {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm="%s", qop="auth,auth-int", nonce="%s", opaque="op"`, realm, nonce))
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		} else if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(testJPEG)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// uploadTarget records PUTs like a presigned S3 URL would take them.
type uploadTarget struct {
	mu          sync.Mutex
	body        []byte
	contentType string
	status      int
}

func (u *uploadTarget) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		defer u.mu.Unlock()
		if r.Method != http.MethodPut {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if u.status != 0 {
			w.WriteHeader(u.status)
			return
		}
		u.body, u.contentType = b, r.Header.Get("Content-Type")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/bucket/snapshots/x.jpg?X-Amz-Signature=secret-signature"
}

func TestCaptureSnapshot(t *testing.T) {
	for _, digest := range []bool{false, true} {
		t.Run(fmt.Sprintf("digest=%v", digest), func(t *testing.T) {
			cam := snapshotCamera(t, digest)
			var up uploadTarget
			uploadURL := up.start(t)
			cameraURL := strings.Replace(cam.URL, "http://", "http://viewer:p%40ss%20word@", 1) + "/snap.jpg"
			_, err := (&Executor{}).Execute(context.Background(), control.Command{V: 1, ID: "c1", Type: control.TypeSnapshot,
				CameraID: "cam", UploadURL: uploadURL, Camera: &control.Camera{SnapshotURL: cameraURL}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(up.body, testJPEG) || up.contentType != "image/jpeg" {
				t.Fatalf("uploaded %q as %q, want the camera's JPEG", up.body, up.contentType)
			}
		})
	}
}

func TestCaptureSnapshotFailures(t *testing.T) {
	cam := snapshotCamera(t, false)
	withCreds := strings.Replace(cam.URL, "http://", "http://viewer:p%40ss%20word@", 1)
	var up, refusing uploadTarget
	uploadURL := up.start(t)
	refusing.status = http.StatusForbidden
	refusedURL := refusing.start(t)
	tests := []struct {
		name, cameraURL, uploadURL, want string
	}{
		{"unreachable", "http://viewer:hunter2@127.0.0.1:1/snap.jpg", uploadURL, "camera unreachable"},
		// A short user name is no secret to scrub: the reason stays readable.
		{"unreachable, user u", "http://u:hunter2@127.0.0.1:1/snap.jpg", uploadURL, "connection refused"},
		{"wrong password", strings.Replace(cam.URL, "http://", "http://viewer:hunter2@", 1) + "/snap.jpg", uploadURL, "HTTP 401"},
		{"not found", withCreds + "/nope.jpg", uploadURL, "HTTP 404"},
		{"rtsp", "rtsp://viewer:hunter2@10.0.0.1/snap", uploadURL, "rtsp snapshot URLs are not supported"},
		{"upload refused", withCreds + "/snap.jpg", refusedURL, "storage answered HTTP 403"},
		{"upload unreachable", withCreds + "/snap.jpg", "http://127.0.0.1:1/bucket/x.jpg?X-Amz-Signature=secret-signature", "upload snapshot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := (&Executor{}).CaptureSnapshot(ctx, tt.cameraURL, tt.uploadURL)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			for _, secret := range []string{"hunter2", "p@ss", "secret-signature"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks %q: %v", secret, err)
				}
			}
		})
	}
}

func TestDigestAuthorizationRefusesOtherSchemes(t *testing.T) {
	for _, ch := range []string{`Basic realm="x"`, `Digest realm="x"`, `Digest realm="x", nonce="n", algorithm=SHA-256`} {
		if _, ok := digestAuthorization(ch, "GET", "/", "u", "p"); ok {
			t.Errorf("answered the challenge %q", ch)
		}
	}
}

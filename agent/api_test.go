package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/opennvr/vms/democam"
	"github.com/opennvr/vms/media"
)

// fakeResolver grants the targets it holds, by token.
type fakeResolver struct {
	mu      sync.Mutex
	targets map[string]StreamTarget
	err     error
}

func (r *fakeResolver) ResolveStream(_ context.Context, token string) (StreamTarget, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return StreamTarget{}, r.err
	}
	t, ok := r.targets[token]
	if !ok {
		return StreamTarget{}, ErrInvalidToken
	}
	return t, nil
}

type apiResponse struct {
	status int
	body   []byte
}

func doJSON(t *testing.T, h http.Handler, method, path, body string) apiResponse {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusNoContent && ct != "application/json" {
		t.Errorf("%s %s: content type %q", method, path, ct)
	}
	return apiResponse{status: rec.Code, body: rec.Body.Bytes()}
}

func (r apiResponse) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not an error body: %s", r.body)
	}
	return e.Error.Code
}

// TestAPIStreamLifecycle drives the whole agent: the local API starts a
// stream from a password-protected demo camera to a fake worker, lists it
// and deletes it.
func TestAPIStreamLifecycle(t *testing.T) {
	const camUser, camPass = "operator", "Cam-Pa55-word"
	cam := startCamera(t, demoSample, democam.WithAuth(camUser, camPass), democam.WithFPS(250))
	w := newFakeWorker(t, func(_ int, c *websocket.Conn, seen *wsConn, w *fakeWorker) {
		if welcome(c, "sess-42") != nil {
			return
		}
		w.readFrames(c, seen, -1)
	})
	res := &fakeResolver{targets: map[string]StreamTarget{
		"tok-a": {SessionID: "sess-42", ChannelID: "chan-1", Quality: "high", WorkerURL: w.url(),
			CameraURL: withCredentials(cam.URL(), camUser, camPass), Protocol: "rtsp"},
	}}
	log, logs := captureLogger()
	m := NewManager(ManagerConfig{Resolver: res, Logger: log})
	t.Cleanup(m.Close)
	h := NewHandler(m, log)

	// camera_url without credentials (the app does not know them) matches.
	r := doJSON(t, h, "POST", "/v1/streams", `{"token":"tok-a","camera_url":"`+cam.URL()+`"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST = %d %s", r.status, r.body)
	}
	var info StreamInfo
	if err := json.Unmarshal(r.body, &info); err != nil || info.SessionID != "sess-42" || info.ChannelID != "chan-1" {
		t.Fatalf("POST body = %s (%v)", r.body, err)
	}

	conns := w.waitFor(t, "frames at the worker", func(s []wsConn) bool { return len(s) == 1 && len(s[0].frames) >= 10 })
	if conns[0].hello.Token != "tok-a" || conns[0].hello.Tracks[0].Codec != media.CodecH264 {
		t.Errorf("hello = %+v", conns[0].hello)
	}
	if !conns[0].frames[0].Keyframe {
		t.Error("first frame at the worker is not a keyframe")
	}

	r = doJSON(t, h, "GET", "/v1/streams", "")
	var list struct {
		Items []StreamInfo `json:"items"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != http.StatusOK {
		t.Fatalf("GET = %d %s", r.status, r.body)
	}
	if len(list.Items) != 1 || list.Items[0].Status != PushLive || list.Items[0].WorkerSessionID != "sess-42" {
		t.Fatalf("list = %+v", list.Items)
	}

	if r := doJSON(t, h, "DELETE", "/v1/streams/sess-42", ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", r.status, r.body)
	}
	conns = w.waitFor(t, "close frame", func(s []wsConn) bool { return s[0].close != nil })
	if conns[0].close.Code != websocket.CloseNormalClosure {
		t.Errorf("close code = %d", conns[0].close.Code)
	}
	if r := doJSON(t, h, "GET", "/v1/streams", ""); !strings.Contains(string(r.body), `"items":[]`) {
		t.Errorf("list after delete = %s", r.body)
	}
	if r := doJSON(t, h, "DELETE", "/v1/streams/sess-42", ""); r.status != http.StatusNotFound || r.errorCode(t) != "not_found" {
		t.Errorf("second DELETE = %d %s", r.status, r.body)
	}

	for _, secret := range []string{camPass, camUser, "tok-a"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("secret %q in logs:\n%s", secret, logs.String())
		}
	}
}

func TestAPIErrors(t *testing.T) {
	target := func(session, cameraURL string) StreamTarget {
		return StreamTarget{SessionID: session, ChannelID: "c", WorkerURL: "ws://127.0.0.1:1/ingest", CameraURL: cameraURL}
	}
	res := &fakeResolver{targets: map[string]StreamTarget{
		"tok-1": target("s1", "rtsp://admin:pw@192.0.2.10/stream1"),
		"tok-2": target("s2", "rtsp://admin:pw@192.0.2.10:8554/stream1"),
		"tok-3": target("s3", "http://admin:pw@192.0.2.11/video.mjpg"),
		"dup":   target("s1", "rtsp://admin:pw@192.0.2.10/stream1"),
	}}
	log, _ := captureLogger()
	m := NewManager(ManagerConfig{
		Resolver: res,
		Logger:   log,
		// No camera is reached in this test.
		NewSource: func(StreamTarget, *slog.Logger) (Source, error) {
			return &fakeSource{interval: time.Hour, gop: 1}, nil
		},
		TunePusher: func(p *Pusher) { p.MinBackoff, p.MaxBackoff = time.Hour, time.Hour },
	})
	t.Cleanup(m.Close)
	h := NewHandler(m, log)

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"bad json", "POST", "/v1/streams", `{"token":`, 400, "bad_request"},
		{"not an object", "POST", "/v1/streams", `["tok-1"]`, 400, "bad_request"},
		{"unknown field", "POST", "/v1/streams", `{"token":"tok-1","camera":"x"}`, 400, "bad_request"},
		{"trailing data", "POST", "/v1/streams", `{"token":"tok-1"} {}`, 400, "bad_request"},
		{"empty body", "POST", "/v1/streams", ``, 400, "bad_request"},
		{"missing token", "POST", "/v1/streams", `{"camera_url":"rtsp://192.0.2.10/stream1"}`, 400, "bad_request"},
		{"invalid camera_url", "POST", "/v1/streams", `{"token":"tok-1","camera_url":"not a url"}`, 400, "bad_request"},
		{"unknown token", "POST", "/v1/streams", `{"token":"forged"}`, 401, "invalid_token"},
		{"other host", "POST", "/v1/streams", `{"token":"tok-1","camera_url":"rtsp://192.0.2.99/stream1"}`, 403, "camera_mismatch"},
		{"other port", "POST", "/v1/streams", `{"token":"tok-1","camera_url":"rtsp://192.0.2.10:8554/stream1"}`, 403, "camera_mismatch"},
		{"other scheme", "POST", "/v1/streams", `{"token":"tok-1","camera_url":"rtsps://192.0.2.10/stream1"}`, 403, "camera_mismatch"},
		{"internal host", "POST", "/v1/streams", `{"token":"tok-3","camera_url":"http://169.254.169.254/latest"}`, 403, "camera_mismatch"},
		{"match with default port and other credentials", "POST", "/v1/streams",
			`{"token":"tok-1","camera_url":"rtsp://x:y@192.0.2.10:554/other"}`, 201, ""},
		{"duplicate session", "POST", "/v1/streams", `{"token":"dup"}`, 409, "stream_exists"},
		{"match explicit port", "POST", "/v1/streams", `{"token":"tok-2","camera_url":"RTSP://192.0.2.10:8554/stream1"}`, 201, ""},
		{"no camera_url", "POST", "/v1/streams", `{"token":"tok-3"}`, 201, ""},
		{"wrong method", "PUT", "/v1/streams", `{}`, 405, "method_not_allowed"},
		{"wrong method on session", "POST", "/v1/streams/s1", `{}`, 405, "method_not_allowed"},
		{"unknown path", "GET", "/v2/things", "", 404, "not_found"},
		{"delete unknown", "DELETE", "/v1/streams/nope", "", 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := doJSON(t, h, tc.method, tc.path, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tc.wantStatus)
			}
			if tc.wantCode != "" {
				if got := r.errorCode(t); got != tc.wantCode {
					t.Errorf("code = %q, want %q", got, tc.wantCode)
				}
			}
			if strings.Contains(string(r.body), ":pw@") {
				t.Errorf("response leaks camera credentials: %s", r.body)
			}
		})
	}

	res.mu.Lock()
	res.err = errors.New("dial control plane: connection refused")
	res.mu.Unlock()
	if r := doJSON(t, h, "POST", "/v1/streams", `{"token":"tok-9"}`); r.status != http.StatusBadGateway {
		t.Errorf("resolver down: status %d %s, want 502", r.status, r.body)
	}

	if got := len(m.List()); got != 3 {
		t.Errorf("list has %d streams, want 3", got)
	}
}

func TestManagerTokenSource(t *testing.T) {
	target := StreamTarget{ChannelID: "ch", Quality: "low", WorkerURL: "ws://w/1"}
	m := NewManager(ManagerConfig{Resolver: &fakeResolver{}})
	defer m.Close()
	ts := m.tokenSource("first", target)
	if tok, u, err := ts(t.Context()); tok != "first" || u != "ws://w/1" || err != nil {
		t.Fatalf("first call = %q %q %v", tok, u, err)
	}
	// Without an issuer the used token cannot be replaced: stop for good.
	if _, _, err := ts(t.Context()); !errors.As(err, new(*RejectedError)) {
		t.Fatalf("second call without issuer = %v, want RejectedError", err)
	}

	m2 := NewManager(ManagerConfig{Resolver: &fakeResolver{}, Tokens: issuerFunc(func(_ context.Context, ch, q string, record bool) (string, string, error) {
		return fmt.Sprintf("fresh-%s-%s-%v", ch, q, record), "ws://w/2", nil
	})})
	defer m2.Close()
	ts = m2.tokenSource("first", target)
	_, _, _ = ts(t.Context())
	if tok, u, err := ts(t.Context()); tok != "fresh-ch-low-false" || u != "ws://w/2" || err != nil {
		t.Fatalf("second call = %q %q %v", tok, u, err)
	}
}

type issuerFunc func(ctx context.Context, channelID, quality string, record bool) (string, string, error)

func (f issuerFunc) IssueStreamToken(ctx context.Context, channelID, quality string, record bool) (string, string, error) {
	return f(ctx, channelID, quality, record)
}

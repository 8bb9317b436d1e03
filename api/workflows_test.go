package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/api"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/streamtoken"
	"github.com/opennvr/vms/temporaltest"
	"github.com/opennvr/vms/workflows"
)

const workerKey = "wrk_test-worker-key"

// newTemporalEnv is an API on the real Temporal dev server, with a workflow
// worker on a task queue of the test's own.
func newTemporalEnv(t *testing.T, opts api.Options) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Temporal dev server")
	}
	st := storetest.Open(t, "sqlite")
	objects, _ := s3test.Start(t)
	tc, _ := temporaltest.Start(t)
	acts := &activities.Activities{Store: st, Objects: objects, Temporal: tc}
	queue := temporaltest.Worker(t, tc, func(r worker.Registry) { workflows.Register(r, acts) })
	signer, err := streamtoken.NewSigner(strings.Repeat("s", 32))
	if err != nil {
		t.Fatal(err)
	}
	opts.Temporal, opts.TaskQueue, opts.Tokens, opts.Recorder, opts.WorkerKey = tc, queue, signer, acts, workerKey
	return newEnvWith(t, st, objects, opts)
}

// waitStatus polls a resource until its status leaves from, or fails.
func (e *env) waitStatus(path, key, from string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out := e.do("GET", path, key, "")
		if code != 200 {
			e.t.Fatalf("GET %s: %d %v", path, code, out)
		}
		if out["status"] != from || time.Now().After(deadline) {
			return out
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCrossAccountMatrix: every public {id} route answers 404 when the id
// belongs to another account, exactly as for an id that does not exist.
func TestCrossAccountMatrix(t *testing.T) {
	e := newTemporalEnv(t, api.Options{})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	ch := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	snap := e.mustCreate("/v1/channels/"+ch+"/snapshots", e.keyA, `{"source":"client"}`)
	now := time.Now().UTC()
	code, out := e.do("POST", "/v1/channels/"+ch+"/clips", e.keyA,
		`{"start":"`+now.Add(-20*time.Minute).Format(time.RFC3339)+`","end":"`+now.Add(-10*time.Minute).Format(time.RFC3339)+`"}`)
	if code != 202 {
		t.Fatalf("create clip: %d %v", code, out)
	}
	clip := out["id"].(string)
	ids := map[string]string{"/v1/cameras/": cam, "/v1/channels/": ch, "/v1/clips/": clip, "/v1/snapshots/": snap}
	bodies := map[string]string{
		"clips":         `{"start":"` + now.Add(-time.Minute).Format(time.RFC3339) + `","end":"` + now.Format(time.RFC3339) + `"}`,
		"snapshots":     `{"source":"client"}`,
		"stream-tokens": `{"quality":"high"}`,
		"ptz":           `{"action":"stop"}`,
	}

	checked := 0
	for _, r := range e.handler.(*gin.Engine).Routes() {
		if !strings.HasPrefix(r.Path, "/v1/") || !strings.Contains(r.Path, ":id") {
			continue
		}
		if strings.HasPrefix(r.Path, "/v1/nvrs/") {
			continue // NVR instances belong to no account; only admins reach them
		}
		var path string
		for prefix, id := range ids {
			if strings.HasPrefix(r.Path, prefix) {
				path = strings.Replace(r.Path, ":id", id, 1)
			}
		}
		if path == "" {
			t.Errorf("no resource of account A for route %s", r.Path)
			continue
		}
		if r.Method == "DELETE" {
			// Deleting with B's key must find nothing and change nothing.
			if code, out := e.do(r.Method, path, e.keyB, ""); code != 404 {
				t.Errorf("%s %s with another account's key: %d %v, want 404", r.Method, r.Path, code, out)
			}
			checked++
			continue
		}
		body := ""
		if r.Method == "POST" || r.Method == "PATCH" {
			body = "{}"
			if b, ok := bodies[r.Path[strings.LastIndex(r.Path, "/")+1:]]; ok {
				body = b
			}
		}
		if code, out := e.do(r.Method, path, e.keyB, body); code != 404 || errorCode(out) != "not_found" {
			t.Errorf("%s %s with another account's key: %d %v, want 404", r.Method, r.Path, code, out)
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d {id} routes checked", checked)
	}
	// The resources are all still there for their owner.
	for prefix, id := range ids {
		if code, _ := e.do("GET", prefix+id, e.keyA, ""); code != 200 {
			t.Errorf("GET %s%s by its owner: %d", prefix, id, code)
		}
	}
}

func TestClipValidationAndPastRangeResolves(t *testing.T) {
	e := newTemporalEnv(t, api.Options{ClipMaxLength: 2 * time.Hour})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	ch := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	for _, tc := range []struct{ name, body, code string }{
		{"end before start", `{"start":"` + ts(0) + `","end":"` + ts(-time.Minute) + `"}`, "invalid_range"},
		{"empty range", `{"start":"` + ts(0) + `","end":"` + ts(0) + `"}`, "invalid_range"},
		{"too long", `{"start":"` + ts(-3*time.Hour) + `","end":"` + ts(0) + `"}`, "invalid_range"},
		{"too far ahead", `{"start":"` + ts(3*time.Hour) + `","end":"` + ts(4*time.Hour) + `"}`, "invalid_range"},
		{"missing end", `{"start":"` + ts(0) + `"}`, "invalid_request"},
		{"bad time", `{"start":"yesterday","end":"` + ts(0) + `"}`, "invalid_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := e.do("POST", "/v1/channels/"+ch+"/clips", e.keyA, tc.body)
			if code != 400 || errorCode(out) != tc.code {
				t.Fatalf("%d %v, want 400 %s", code, out, tc.code)
			}
		})
	}
	code, out := e.do("POST", "/v1/channels/"+ch+"/clips", e.keyA, `{"start":"`+ts(-20*time.Minute)+`","end":"`+ts(-10*time.Minute)+`"}`)
	if code != 202 || out["status"] != "in_progress" {
		t.Fatalf("create clip: %d %v", code, out)
	}
	final := e.waitStatus("/v1/clips/"+out["id"].(string), e.keyA, "in_progress")
	if final["status"] != "failed" || final["error"] == "" {
		t.Fatalf("a past range without recordings: %v, want failed with a reason", final)
	}
}

// TestStreamTokenSingleUse: a token authorizes one session once; replayed,
// forged or expired tokens are refused with a clear code.
func TestStreamTokenSingleUse(t *testing.T) {
	e := newTemporalEnv(t, api.Options{})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	ch := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	code, tok := e.do("POST", "/v1/channels/"+ch+"/stream-tokens", e.keyA, `{"quality":"mid"}`)
	if code != 201 || tok["token"] == "" || tok["worker_url"] == "" || tok["session_id"] == "" {
		t.Fatalf("stream token: %d %v", code, tok)
	}
	if exp, _ := time.Parse(time.RFC3339, tok["expires_at"].(string)); time.Until(exp) > 61*time.Second {
		t.Fatalf("token lives until %v, want ≤ 60 s", exp)
	}
	if code, out := e.do("POST", "/v1/channels/"+ch+"/stream-tokens", e.keyA, `{"quality":"ultra"}`); code != 400 {
		t.Fatalf("bad quality: %d %v", code, out)
	}
	authorize := `{"token":"` + tok["token"].(string) + `","worker":"w1"}`
	if code, out := e.do("POST", "/internal/v1/sessions/authorize", e.keyA, authorize); code != 401 {
		t.Fatalf("authorize with an API key instead of the worker key: %d %v", code, out)
	}
	code, grant := e.do("POST", "/internal/v1/sessions/authorize", workerKey, authorize)
	if code != 200 || grant["session_id"] != tok["session_id"] || grant["channel_id"] != ch {
		t.Fatalf("authorize: %d %v", code, grant)
	}
	if code, out := e.do("POST", "/internal/v1/sessions/authorize", workerKey, authorize); code != 409 {
		t.Fatalf("replayed token: %d %v, want 409", code, out)
	}
	forged := strings.Replace(tok["token"].(string), ".", "x.", 1)
	if code, out := e.do("POST", "/internal/v1/sessions/authorize", workerKey, `{"token":"`+forged+`"}`); code != 401 || errorCode(out) != "token_invalid" {
		t.Fatalf("forged token: %d %v", code, out)
	}
}

func TestStreamTokenExpires(t *testing.T) {
	e := newTemporalEnv(t, api.Options{TokenExpiry: time.Second})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	ch := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	_, tok := e.do("POST", "/v1/channels/"+ch+"/stream-tokens", e.keyA, `{"quality":"high"}`)
	time.Sleep(2100 * time.Millisecond)
	code, out := e.do("POST", "/internal/v1/sessions/authorize", workerKey, `{"token":"`+tok["token"].(string)+`"}`)
	if code != 401 || errorCode(out) != "token_expired" {
		t.Fatalf("expired token: %d %v", code, out)
	}
}

// TestSnapshotClientPath: presigned PUT (tampered refused), complete, ready,
// and the presigned GET returns the uploaded bytes.
func TestSnapshotClientPath(t *testing.T) {
	e := newTemporalEnv(t, api.Options{})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	ch := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	code, snap := e.do("POST", "/v1/channels/"+ch+"/snapshots", e.keyA, `{"source":"client"}`)
	if code != 201 || snap["status"] != "pending" || snap["upload_url"] == "" {
		t.Fatalf("create snapshot: %d %v", code, snap)
	}
	if code, out := e.do("POST", "/v1/channels/"+ch+"/snapshots", e.keyA, `{"source":"drone"}`); code != 400 {
		t.Fatalf("bad source: %d %v", code, out)
	}
	jpeg := []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9")
	put := func(url string) int {
		code, _ := s3test.Presigned(t, http.MethodPut, url, "image/jpeg", jpeg)
		return code
	}
	upload := snap["upload_url"].(string)
	if code := put(strings.Replace(upload, "X-Amz-Signature=", "X-Amz-Signature=00", 1)); code != 403 {
		t.Fatalf("tampered presigned PUT: %d, want 403", code)
	}
	if code := put(upload); code != 200 {
		t.Fatalf("presigned PUT: %d", code)
	}
	id := snap["id"].(string)
	if code, out := e.do("POST", "/v1/snapshots/"+id+"/complete", e.keyA, ""); code != 202 {
		t.Fatalf("complete: %d %v", code, out)
	}
	final := e.waitStatus("/v1/snapshots/"+id, e.keyA, "pending")
	if final["status"] != "ready" {
		t.Fatalf("snapshot: %v, want ready", final)
	}
	if got := s3test.Download(t, final["url"].(string)); !bytes.Equal(got, jpeg) {
		t.Fatalf("downloaded %q, want the uploaded bytes", got)
	}
	if code, out := e.do("POST", "/v1/snapshots/"+id+"/complete", e.keyA, ""); code != 409 {
		t.Fatalf("completing a ready snapshot: %d %v", code, out)
	}
}

package api_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/opennvr/vms/api"
	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/store/storetest"
)

// nvrNamed finds an NVR in GET /v1/nvrs.
func (e *env) nvrNamed(name string) map[string]any {
	e.t.Helper()
	code, out := e.do("GET", "/v1/nvrs", e.keyA, "")
	if code != 200 {
		e.t.Fatalf("list nvrs: %d %v", code, out)
	}
	for _, it := range out["items"].([]any) {
		if n := it.(map[string]any); n["name"] == name {
			return n
		}
	}
	e.t.Fatalf("no NVR %q in %v", name, out)
	return nil
}

func TestNVRStatus(t *testing.T) {
	e := newEnv(t, storetest.Open(t, "sqlite"), api.Options{})
	id := e.nvrNamed("nvr-1")["id"].(string)
	for _, status := range []string{"draining", "active"} {
		code, out := e.do("PATCH", "/v1/nvrs/"+id, e.keyA, `{"status":"`+status+`"}`)
		if code != 200 || out["status"] != status || out["id"] != id || out["name"] != "nvr-1" {
			t.Fatalf("PATCH status %s: %d %v", status, code, out)
		}
		if got := e.nvrNamed("nvr-1"); got["status"] != status {
			t.Fatalf("after PATCH %s: %v", status, got)
		}
	}
	bad := []struct {
		name, key, path, body string
		status                int
		code                  string
	}{
		{"not an admin", e.keyB, "/v1/nvrs/" + id, `{"status":"draining"}`, 403, "forbidden"},
		{"unknown status", e.keyA, "/v1/nvrs/" + id, `{"status":"retired"}`, 400, "invalid_request"},
		{"no status", e.keyA, "/v1/nvrs/" + id, `{}`, 400, "invalid_request"},
		{"other fields", e.keyA, "/v1/nvrs/" + id, `{"status":"active","capacity":3}`, 400, "unknown_field"},
		{"bad id", e.keyA, "/v1/nvrs/x", `{"status":"active"}`, 400, "invalid_id"},
		{"unknown nvr", e.keyA, "/v1/nvrs/00000000-0000-0000-0000-000000000000", `{"status":"active"}`, 404, "not_found"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			code, out := e.do("PATCH", tc.path, tc.key, tc.body)
			if code != tc.status || errorCode(out) != tc.code {
				t.Fatalf("%d %v, want %d %s", code, out, tc.status, tc.code)
			}
		})
	}
	if got := e.nvrNamed("nvr-1"); got["status"] != "active" {
		t.Errorf("refused PATCHes changed the NVR: %v", got)
	}
}

// TestNVRHeartbeat: a media worker keeping its registration fresh moves
// its NVR's last_seen_at forward, and stops when told to.
func TestNVRHeartbeat(t *testing.T) {
	e := newTemporalEnv(t, api.Options{})
	if seen := e.nvrNamed("nvr-1")["last_seen_at"]; seen != nil {
		t.Fatalf("NVR never heard from shows last_seen_at %v", seen)
	}
	worker := &mediaworker.APIClient{API: &apiclient.Client{BaseURL: e.url, Key: workerKey}, Worker: "nvr-1"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.KeepRegistered(ctx, "nvr-1", "ws://127.0.0.1:1/v1/ingest", 100, 50*time.Millisecond)
	}()

	var seen []time.Time
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < 3 && time.Now().Before(deadline) {
		if s, ok := e.nvrNamed("nvr-1")["last_seen_at"].(string); ok {
			at, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) == 0 || at.After(seen[len(seen)-1]) {
				seen = append(seen, at)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if len(seen) < 3 {
		t.Errorf("last_seen_at took %d values in 10 s, want it to keep moving", len(seen))
	}
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("KeepRegistered returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("KeepRegistered did not stop when its context ended")
	}
	if n := e.nvrNamed("nvr-1"); n["media_url"] != "ws://127.0.0.1:1/v1/ingest" || n["capacity"] != float64(100) {
		t.Errorf("heartbeats changed the registration: %v", n)
	}
}

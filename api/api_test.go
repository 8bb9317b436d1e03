package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/api"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

// logs captures what the API logs, so tests can check that secrets never
// reach it (and keeps request logs out of the test output).
var logs syncBuffer

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s3test.Main(m)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is an API server on a real store and a real embedded S3, with two
// accounts (A is admin) and their keys.
type env struct {
	t       *testing.T
	url     string
	store   *store.Store
	keyA    string
	keyB    string
	acctA   *store.Account
	acctB   *store.Account
	client  *http.Client
	handler http.Handler
}

func newEnv(t *testing.T, st *store.Store, opts api.Options) *env {
	t.Helper()
	objects, _ := s3test.Start(t)
	return newEnvWith(t, st, objects, opts)
}

func newEnvWith(t *testing.T, st *store.Store, objects *objectstore.Client, opts api.Options) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, store: st, keyA: store.NewSecret("vms_"), keyB: store.NewSecret("vms_"), client: &http.Client{Timeout: 30 * time.Second}}
	var err error
	if e.acctA, err = st.CreateAccount(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	if e.acctB, err = st.CreateAccount(ctx, "b", false); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAPIKey(ctx, e.acctA.ID, "k", e.keyA); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAPIKey(ctx, e.acctB.ID, "k", e.keyB); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertNVR(ctx, &store.NVR{Name: "nvr-1", MediaURL: "ws://127.0.0.1:1/v1/ingest", Capacity: 100}); err != nil {
		t.Fatal(err)
	}
	opts.Store, opts.Objects = st, objects
	e.handler = api.New(opts).Handler()
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// do sends a request with key (empty: none) and decodes a JSON answer.
func (e *env) do(method, path, key, body string) (int, map[string]any) {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.url+path, r)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("%s %s: answer is not JSON (%d): %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

// mustCreate posts and returns the new resource's id.
func (e *env) mustCreate(path, key, body string) string {
	e.t.Helper()
	code, out := e.do("POST", path, key, body)
	if code != http.StatusCreated {
		e.t.Fatalf("POST %s = %d %v", path, code, out)
	}
	return out["id"].(string)
}

const cameraJSON = `{"name":"door","protocol":"rtsp","host":"127.0.0.1","port":554,"username":"admin","password":"hunter2-secret",
 "streams":{"high":"/h","mid":"/m","low":"/l"},"snapshot_url":"http://admin:hunter2-secret@127.0.0.1/snap.jpg","recording_url":"","ptz":true}`

func TestAuthentication(t *testing.T) {
	e := newEnv(t, storetest.Open(t, "sqlite"), api.Options{})
	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{"missing key", "", 401},
		{"invalid key", "vms_nope", 401},
		{"valid key", e.keyA, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := e.do("GET", "/v1/cameras", tc.key, "")
			if code != tc.want {
				t.Fatalf("status %d, want %d (%v)", code, tc.want, out)
			}
			if code == 401 && errorCode(out) != "unauthorized" {
				t.Fatalf("error body %v", out)
			}
		})
	}
	if code, _ := e.do("GET", "/v1/nvrs", e.keyB, ""); code != 403 {
		t.Fatalf("non-admin listing NVRs: %d, want 403", code)
	}
	if code, _ := e.do("POST", "/internal/v1/sessions/authorize", e.keyA, `{}`); code != 401 && code != 503 {
		t.Fatalf("API key on the internal API: %d, want 401", code)
	}
}

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestCameraLifecycleAndPasswordNeverReturned(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st, api.Options{})
		id := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
		code, cam := e.do("GET", "/v1/cameras/"+id, e.keyA, "")
		if code != 200 {
			t.Fatalf("get camera %d", code)
		}
		raw, _ := json.Marshal(cam)
		if strings.Contains(string(raw), "hunter2") {
			t.Fatalf("password in response: %s", raw)
		}
		if cam["has_password"] != true || cam["port"].(float64) != 554 {
			t.Fatalf("camera view %s", raw)
		}
		code, cam = e.do("PATCH", "/v1/cameras/"+id, e.keyA, `{"name":"front door","port":8554}`)
		if code != 200 || cam["name"] != "front door" || cam["port"].(float64) != 8554 || cam["has_password"] != true {
			t.Fatalf("patch camera %d %v", code, cam)
		}
		code, list := e.do("GET", "/v1/cameras", e.keyA, "")
		if code != 200 || len(list["items"].([]any)) != 1 {
			t.Fatalf("list cameras %d %v", code, list)
		}
		code, list = e.do("GET", "/v1/cameras", e.keyB, "")
		if code != 200 || len(list["items"].([]any)) != 0 {
			t.Fatalf("account B sees A's cameras: %v", list)
		}

		ch := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+id+`","retention_days":7}`)
		if code, out := e.do("DELETE", "/v1/cameras/"+id, e.keyA, ""); code != 409 || errorCode(out) != "camera_has_channels" {
			t.Fatalf("delete camera with channel: %d %v", code, out)
		}
		if code, _ := e.do("DELETE", "/v1/channels/"+ch, e.keyA, ""); code != 204 {
			t.Fatalf("delete channel %d", code)
		}
		if code, _ := e.do("DELETE", "/v1/cameras/"+id, e.keyA, ""); code != 204 {
			t.Fatalf("delete camera %d", code)
		}
		if code, _ := e.do("GET", "/v1/cameras/"+id, e.keyA, ""); code != 404 {
			t.Fatalf("deleted camera still there: %d", code)
		}
		if strings.Contains(logs.String(), "hunter2") {
			t.Fatal("camera password in the logs")
		}
	})
}

func TestChannelAssignmentAndPaging(t *testing.T) {
	e := newEnv(t, storetest.Open(t, "sqlite"), api.Options{})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	code, out := e.do("POST", "/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	if code != 201 || out["nvr_id"] == "" || out["status"] != "active" || out["retention_days"].(float64) != 30 {
		t.Fatalf("create channel %d %v", code, out)
	}
	for i := 0; i < 4; i++ {
		e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		code, out := e.do("GET", "/v1/channels?limit=2&cursor="+cursor, e.keyA, "")
		if code != 200 {
			t.Fatalf("list %d %v", code, out)
		}
		for _, it := range out["items"].([]any) {
			id := it.(map[string]any)["id"].(string)
			if seen[id] {
				t.Fatalf("channel %s listed twice", id)
			}
			seen[id] = true
		}
		if cursor = out["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %d channels, want 5", len(seen))
	}
}

func TestRecordingsListedWithPresignedURLs(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	e := newEnv(t, st, api.Options{})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	chID := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	ch, err := st.GetChannel(context.Background(), e.acctA.ID, mustUUID(t, chID))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for i := 0; i < 3; i++ {
		start := base.Add(time.Duration(i) * 30 * time.Second)
		r := &store.Recording{ChannelID: ch.ID, SessionID: ch.ID, Key: recording.RecordingKey(ch.ID, ch.ID, start),
			Start: start, End: start.Add(30 * time.Second), DurationMS: 30000, Size: 100, Codec: "h264"}
		if _, err := st.AddRecording(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	q := "?from=" + base.Add(-time.Minute).Format(time.RFC3339) + "&to=" + base.Add(time.Hour).Format(time.RFC3339)
	code, out := e.do("GET", "/v1/channels/"+chID+"/recordings"+q+"&limit=2", e.keyA, "")
	items, _ := out["items"].([]any)
	if code != 200 || len(items) != 2 || out["next_cursor"] == "" {
		t.Fatalf("recordings page 1: %d %v", code, out)
	}
	first := items[0].(map[string]any)
	if u, _ := first["url"].(string); !strings.Contains(u, "X-Amz-Signature=") || first["duration_ms"].(float64) != 30000 {
		t.Fatalf("recording item %v", first)
	}
	code, out = e.do("GET", "/v1/channels/"+chID+"/recordings"+q+"&limit=2&cursor="+out["next_cursor"].(string), e.keyA, "")
	if code != 200 || len(out["items"].([]any)) != 1 || out["next_cursor"] != "" {
		t.Fatalf("recordings page 2: %d %v", code, out)
	}
	code, out = e.do("GET", "/v1/channels/"+chID+"/timeline"+q, e.keyA, "")
	if code != 200 || len(out["spans"].([]any)) != 1 || len(out["gaps"].([]any)) != 2 {
		t.Fatalf("timeline: %d %v", code, out)
	}
}

// TestBadInput: every malformed request is a 400 with the JSON error model,
// never a 500.
func TestBadInput(t *testing.T) {
	e := newEnv(t, storetest.Open(t, "sqlite"), api.Options{})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	ch := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	now := time.Now().UTC()
	rec := "/v1/channels/" + ch + "/recordings"
	tests := []struct {
		name, method, path, body, code string
	}{
		{"malformed JSON", "POST", "/v1/cameras", `{bad json`, "invalid_json"},
		{"truncated JSON", "POST", "/v1/cameras", `{"name":"x"`, "invalid_json"},
		{"empty body", "POST", "/v1/cameras", ``, "invalid_json"},
		{"array body", "POST", "/v1/cameras", `[1,2]`, "invalid_type"},
		{"trailing data", "POST", "/v1/cameras", `{"name":"x"} {}`, "invalid_json"},
		{"unknown field", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","host":"h","colour":"red"}`, "unknown_field"},
		{"wrong type", "POST", "/v1/cameras", `{"name":1}`, "invalid_type"},
		{"wrong type port", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","host":"h","port":"554"}`, "invalid_type"},
		{"missing name", "POST", "/v1/cameras", `{"protocol":"rtsp","host":"h","streams":{"high":"/a"}}`, "invalid_request"},
		{"missing host", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","streams":{"high":"/a"}}`, "invalid_request"},
		{"rtmp not supported", "POST", "/v1/cameras", `{"name":"x","protocol":"rtmp","host":"h","streams":{"high":"/live"}}`, "invalid_request"},
		{"bad protocol", "POST", "/v1/cameras", `{"name":"x","protocol":"carrier-pigeon","host":"h","port":554}`, "invalid_request"},
		{"port too big", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","host":"h","port":70000,"streams":{"high":"/a"}}`, "invalid_request"},
		{"port zero", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","host":"h","port":0,"streams":{"high":"/a"}}`, "invalid_request"},
		{"negative port", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","host":"h","port":-1,"streams":{"high":"/a"}}`, "invalid_request"},
		{"host with scheme", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","host":"rtsp://h/x","streams":{"high":"/a"}}`, "invalid_request"},
		{"no stream path", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","host":"h"}`, "invalid_request"},
		{"relative stream path", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","host":"h","streams":{"high":"a"}}`, "invalid_request"},
		{"bad snapshot url", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","host":"h","streams":{"high":"/a"},"snapshot_url":"nope"}`, "invalid_request"},
		{"bad agent id", "POST", "/v1/cameras", `{"name":"x","protocol":"rtsp","host":"h","streams":{"high":"/a"},"agent_id":"zz"}`, "invalid_request"},
		{"patch bad port", "PATCH", "/v1/cameras/" + cam, `{"port":99999}`, "invalid_request"},
		{"channel unknown camera", "POST", "/v1/channels", `{"camera_id":"00000000-0000-0000-0000-000000000000"}`, "not_found"},
		{"channel bad camera id", "POST", "/v1/channels", `{"camera_id":"x"}`, "invalid_request"},
		{"channel missing camera", "POST", "/v1/channels", `{}`, "invalid_request"},
		{"channel bad retention", "POST", "/v1/channels", `{"camera_id":"` + cam + `","retention_days":0}`, "invalid_request"},
		{"channel unknown nvr", "POST", "/v1/channels", `{"camera_id":"` + cam + `","nvr_id":"00000000-0000-0000-0000-000000000000"}`, "invalid_request"},
		{"id not a uuid", "GET", "/v1/channels/not-a-uuid/recordings", ``, "invalid_id"},
		{"bad from", "GET", rec + "?from=notatime", ``, "invalid_time"},
		{"bad to", "GET", rec + "?to=2026-13-01T00:00:00Z", ``, "invalid_time"},
		{"from after to", "GET", rec + "?from=" + now.Format(time.RFC3339) + "&to=" + now.Add(-time.Hour).Format(time.RFC3339), ``, "invalid_range"},
		{"huge limit", "GET", rec + "?limit=100000000", ``, "invalid_limit"},
		{"zero limit", "GET", rec + "?limit=0", ``, "invalid_limit"},
		{"text limit", "GET", rec + "?limit=ten", ``, "invalid_limit"},
		{"bad cursor", "GET", rec + "?cursor=bm90LWEtY3Vyc29y", ``, "invalid_cursor"},
		{"bad list cursor", "GET", "/v1/cameras?cursor=zzz", ``, "invalid_cursor"},
		{"nvr bad url", "POST", "/v1/nvrs", `{"name":"n","media_url":"http://x"}`, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.do(tt.method, tt.path, e.keyA, tt.body)
			if code < 400 || code >= 500 {
				t.Fatalf("%s %s → %d %v, want 4xx", tt.method, tt.path, code, out)
			}
			if got := errorCode(out); got != tt.code {
				t.Fatalf("error code %q, want %q (%v)", got, tt.code, out)
			}
			if msg, _ := out["error"].(map[string]any)["message"].(string); msg == "" {
				t.Fatalf("no error message: %v", out)
			}
		})
	}
}

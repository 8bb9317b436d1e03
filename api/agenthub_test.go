package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/agent"
	"github.com/opennvr/vms/agent/onviftest"
	"github.com/opennvr/vms/api"
	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/temporaltest"
	"github.com/opennvr/vms/workflows"
)

const (
	agentKey     = "agt_test-agent-key"
	cameraSecret = "onvif-secret-pw"
)

// controlEnv is a control plane for the agent control channel: one store,
// one S3, one Temporal dev server and a workflow worker, shared by every
// API instance the test starts. env (the public calls) is one instance;
// replica starts more. Account A has one agent, keyed agentKey.
type controlEnv struct {
	*env
	opts  api.Options
	agent *store.Agent
}

func newControlEnv(t *testing.T, opts api.Options) *controlEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Temporal dev server")
	}
	st := storetest.Open(t, "sqlite")
	objects, _ := s3test.Start(t)
	tc, _ := temporaltest.Start(t)
	acts := &activities.Activities{Store: st, Objects: objects, Temporal: tc}
	opts.TaskQueue = temporaltest.Worker(t, tc, func(r worker.Registry) { workflows.Register(r, acts) })
	opts.Temporal, opts.WorkerKey = tc, workerKey
	if opts.AgentOfflineAfter == 0 {
		opts.AgentOfflineAfter = 3 * time.Second
	}
	if opts.AgentAckTimeout == 0 {
		opts.AgentAckTimeout = 5 * time.Second
	}
	e := &controlEnv{env: newEnvWith(t, st, objects, opts)}
	opts.Store, opts.Objects = st, objects
	e.opts = opts
	// Public calls go to a replica this test closes, which waits for its
	// agent connections' Temporal workers to stop.
	e.url, _ = e.replica("")
	var err error
	if e.agent, err = st.AddAgent(context.Background(), e.acctA.ID, "lan", agentKey); err != nil {
		t.Fatal(err)
	}
	return e
}

// replica starts another API instance on the shared store and Temporal (on
// addr if not empty: a restarted replica) and returns its base URL and a
// stop function; it is stopped when the test ends at the latest.
func (e *controlEnv) replica(addr string) (string, func()) {
	e.t.Helper()
	srv := api.New(e.opts)
	ts := httptest.NewUnstartedServer(srv.Handler())
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			e.t.Fatalf("listen again on %s: %v", addr, err)
		}
		ts.Listener.Close()
		ts.Listener = ln
	}
	ts.Start()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			ts.Close()
			srv.Close()
		}
	}
	e.t.Cleanup(stop)
	return ts.URL, stop
}

// runAgent connects a real agent (control channel + Executor) to apiURL
// until the test ends or the returned stop is called.
func (e *controlEnv) runAgent(apiURL string) (stop func()) {
	e.t.Helper()
	u, err := agent.ControlURL(apiURL)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &agent.ControlClient{URL: u, Key: agentKey, Commands: &agent.Executor{},
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// ptzCamera registers a PTZ camera whose ONVIF service is cam.
func (e *controlEnv) ptzCamera(cam *onviftest.Camera) string {
	e.t.Helper()
	host, port, _ := net.SplitHostPort(cam.Addr())
	return e.mustCreate("/v1/cameras", e.keyA, fmt.Sprintf(`{"name":"dome","protocol":"rtsp","host":"%s","port":%s,
		"username":"admin","password":"%s","streams":{"high":"/h"},"ptz":true}`, host, port, cameraSecret))
}

// timed runs f and returns how long it took.
func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// TestPTZDeliveredOverControlChannel: each PTZ call reaches the agent, the
// agent drives the camera over ONVIF, and the API answers 202 after the ack.
func TestPTZDeliveredOverControlChannel(t *testing.T) {
	e := newControlEnv(t, api.Options{})
	cam := onviftest.Start(t, onviftest.Options{Username: "admin", Password: cameraSecret})
	id := e.ptzCamera(cam)
	e.runAgent(e.url)

	code, out := e.do("POST", "/v1/cameras/"+id+"/ptz", e.keyA, `{"action":"left","speed":0.8}`)
	if code != 202 || out["action"] != "left" || out["speed"] != 0.8 || out["command_id"] == "" {
		t.Fatalf("PTZ left: %d %v", code, out)
	}
	code, out = e.do("POST", "/v1/cameras/"+id+"/ptz", e.keyA, `{"action":"preset","preset":3}`)
	if code != 202 {
		t.Fatalf("PTZ preset: %d %v", code, out)
	}
	calls := cam.Calls()
	if len(calls) != 3 || calls[0].Operation != "ContinuousMove" || *calls[0].PanX != -0.8 || *calls[0].PanY != 0 ||
		calls[1].Operation != "GetPresets" || calls[2].Operation != "GotoPreset" || calls[2].PresetToken != "preset-c" {
		t.Fatalf("camera calls %+v, want ContinuousMove x=-0.8, then GetPresets and GotoPreset preset-c", calls)
	}
	// A camera error comes back as the agent's reason.
	code, out = e.do("POST", "/v1/cameras/"+id+"/ptz", e.keyA, `{"action":"preset","preset":7}`)
	if code != 502 || errorCode(out) != "ptz_failed" || !strings.Contains(fmt.Sprint(out), "preset 7 does not exist") {
		t.Fatalf("PTZ to a missing preset: %d %v, want 502 ptz_failed naming the preset", code, out)
	}
	if strings.Contains(logs.String(), cameraSecret) {
		t.Fatal("the camera password reached the logs")
	}
}

// TestPTZOfflineAndSilentAgents: no agent connected → 409 agent_offline
// after the offline bound; an agent that takes the command but never
// answers → 504 agent_timeout; an agent that went away → 409 again.
func TestPTZOfflineAndSilentAgents(t *testing.T) {
	t.Parallel() // mostly waiting out timeouts
	e := newControlEnv(t, api.Options{AgentOfflineAfter: 2 * time.Second, AgentAckTimeout: 2 * time.Second})
	cam := onviftest.Start(t, onviftest.Options{Username: "admin", Password: cameraSecret})
	id := e.ptzCamera(cam)

	var code int
	var out map[string]any
	took := timed(func() { code, out = e.do("POST", "/v1/cameras/"+id+"/ptz", e.keyA, `{"action":"stop"}`) })
	if code != 409 || errorCode(out) != "agent_offline" || took < 2*time.Second {
		t.Fatalf("no agent: %d %v after %s, want 409 agent_offline after 2 s", code, out, took)
	}

	// A connection that never acks: the API is the only one talking.
	u, _ := agent.ControlURL(e.url)
	silent, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + agentKey}})
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan control.Command, 1)
	go func() {
		var cmd control.Command
		if silent.ReadJSON(&cmd) == nil {
			received <- cmd
		}
		for {
			if _, _, err := silent.ReadMessage(); err != nil {
				return
			}
		}
	}()
	code, out = e.do("POST", "/v1/cameras/"+id+"/ptz", e.keyA, `{"action":"up"}`)
	if code != 504 || errorCode(out) != "agent_timeout" {
		t.Fatalf("silent agent: %d %v, want 504 agent_timeout", code, out)
	}
	select {
	case cmd := <-received:
		if cmd.V != 1 || cmd.Type != "ptz" || cmd.Action != "up" || cmd.Camera == nil || cmd.Camera.ONVIF != cam.Addr() ||
			cmd.Camera.Username != "admin" || cmd.Camera.Password != cameraSecret {
			t.Fatalf("the agent received %+v, want the up command with the camera's ONVIF address and credentials", cmd)
		}
	default:
		t.Fatal("the silent agent never received the command")
	}
	silent.Close()

	// Gone again: offline, not a timeout.
	code, out = e.do("POST", "/v1/cameras/"+id+"/ptz", e.keyA, `{"action":"down"}`)
	if code != 409 || errorCode(out) != "agent_offline" {
		t.Fatalf("agent gone: %d %v, want 409 agent_offline", code, out)
	}
}

// TestControlChannelAcrossReplicas: the agent holds its connection to
// replica A; PTZ calls reach replica B and are delivered through Temporal.
// Replica A restarts (dropping the connection): the agent reconnects and
// commands flow again.
func TestControlChannelAcrossReplicas(t *testing.T) {
	e := newControlEnv(t, api.Options{})
	cam := onviftest.Start(t, onviftest.Options{Username: "admin", Password: cameraSecret})
	id := e.ptzCamera(cam)
	urlA, stopA := e.replica("")
	e.runAgent(urlA)

	if code, out := e.do("POST", "/v1/cameras/"+id+"/ptz", e.keyA, `{"action":"zoom_in","speed":0.2}`); code != 202 {
		t.Fatalf("PTZ through replica B to the agent on A: %d %v", code, out)
	}
	if calls := cam.Calls(); len(calls) != 1 || calls[0].Operation != "ContinuousMove" || calls[0].Zoom == nil || *calls[0].Zoom != 0.2 {
		t.Fatalf("camera calls %+v, want one ContinuousMove zoom 0.2", calls)
	}

	stopA()
	e.replica(strings.TrimPrefix(urlA, "http://"))
	// The command waits for the agent to be back (within the offline bound).
	if code, out := e.do("POST", "/v1/cameras/"+id+"/ptz", e.keyA, `{"action":"home"}`); code != 202 {
		t.Fatalf("PTZ after replica A restarted: %d %v", code, out)
	}
	if calls := cam.Calls(); len(calls) != 2 || calls[1].Operation != "GotoHomePosition" {
		t.Fatalf("camera calls %+v, want GotoHomePosition last", calls)
	}
}

// TestPTZBadInput: every invalid PTZ request is a 400 with a clear code,
// decided before any agent is asked.
func TestPTZBadInput(t *testing.T) {
	e := newControlEnv(t, api.Options{})
	cam := onviftest.Start(t, onviftest.Options{})
	id := e.ptzCamera(cam)
	noPTZ := e.mustCreate("/v1/cameras", e.keyA, strings.Replace(cameraJSON, `"ptz":true`, `"ptz":false`, 1))
	ptz := "/v1/cameras/" + id + "/ptz"
	tests := []struct {
		name, path, body, code string
		status                 int
	}{
		{"unknown action", ptz, `{"action":"somersault"}`, "invalid_request", 400},
		{"no action", ptz, `{}`, "invalid_request", 400},
		{"preset without n", ptz, `{"action":"preset"}`, "invalid_request", 400},
		{"preset zero", ptz, `{"action":"preset","preset":0}`, "invalid_request", 400},
		{"preset negative", ptz, `{"action":"preset","preset":-2}`, "invalid_request", 400},
		{"preset not an integer", ptz, `{"action":"preset","preset":1.5}`, "invalid_type", 400},
		{"preset on a move", ptz, `{"action":"left","preset":2}`, "invalid_request", 400},
		{"speed zero", ptz, `{"action":"left","speed":0}`, "invalid_request", 400},
		{"speed too high", ptz, `{"action":"left","speed":1.5}`, "invalid_request", 400},
		{"speed negative", ptz, `{"action":"left","speed":-0.5}`, "invalid_request", 400},
		{"speed as text", ptz, `{"action":"left","speed":"fast"}`, "invalid_type", 400},
		{"unknown field", ptz, `{"action":"left","tilt":1}`, "unknown_field", 400},
		{"malformed", ptz, `{"action":`, "invalid_json", 400},
		{"camera without PTZ", "/v1/cameras/" + noPTZ + "/ptz", `{"action":"left"}`, "ptz_unsupported", 400},
		{"bad camera id", "/v1/cameras/nope/ptz", `{"action":"left"}`, "invalid_id", 400},
		{"unknown camera", "/v1/cameras/00000000-0000-0000-0000-000000000000/ptz", `{"action":"left"}`, "not_found", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.do("POST", tt.path, e.keyA, tt.body)
			if code != tt.status || errorCode(out) != tt.code {
				t.Fatalf("%d %v, want %d %s", code, out, tt.status, tt.code)
			}
		})
	}
	if code, out := e.do("POST", ptz, e.keyB, `{"action":"left"}`); code != 404 {
		t.Fatalf("another account's camera: %d %v, want 404", code, out)
	}
	if calls := cam.AllCalls(); len(calls) != 0 {
		t.Fatalf("the camera was called for bad input: %+v", calls)
	}
}

// snapshotCamera serves jpeg at /snap.jpg to user "viewer" with password
// pass (basic auth).
func snapshotCamera(t *testing.T, jpeg []byte, pass string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "viewer" || p != pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(jpeg)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestAgentSnapshot: the agent fetches the camera's snapshot URL with the
// camera's credentials and uploads it; the snapshot is ready and its URL
// serves the same bytes. An unreachable camera fails the snapshot with the
// reason; a camera without a snapshot URL or an agent is a 400.
func TestAgentSnapshot(t *testing.T) {
	e := newControlEnv(t, api.Options{})
	jpeg := []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00agent-capture\xff\xd9")
	camSrv := snapshotCamera(t, jpeg, "snap-secret")
	e.runAgent(e.url)

	channel := func(snapshotURL string) string {
		cam := e.mustCreate("/v1/cameras", e.keyA, `{"name":"porch","protocol":"rtsp","host":"127.0.0.1","port":8554,
			"username":"viewer","password":"snap-secret","streams":{"high":"/h"},"snapshot_url":"`+snapshotURL+`"}`)
		return e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	}
	take := func(ch string) map[string]any {
		t.Helper()
		code, sn := e.do("POST", "/v1/channels/"+ch+"/snapshots", e.keyA, `{"source":"agent"}`)
		if code != 201 || sn["status"] != "pending" || sn["upload_url"] != nil {
			t.Fatalf("create agent snapshot: %d %v", code, sn)
		}
		return e.waitStatus("/v1/snapshots/"+sn["id"].(string), e.keyA, "pending")
	}

	t.Run("ready", func(t *testing.T) {
		final := take(channel(camSrv.URL + "/snap.jpg"))
		if final["status"] != "ready" || final["content_type"] != "image/jpeg" {
			t.Fatalf("snapshot %v, want ready image/jpeg", final)
		}
		if got := s3test.Download(t, final["url"].(string)); !bytes.Equal(got, jpeg) {
			t.Fatalf("presigned GET returned %q, want the camera's image", got)
		}
	})
	t.Run("camera unreachable", func(t *testing.T) {
		final := take(channel("http://127.0.0.1:1/snap.jpg"))
		if final["status"] != "failed" || !strings.Contains(fmt.Sprint(final["error"]), "camera unreachable") {
			t.Fatalf("snapshot %v, want failed: camera unreachable", final)
		}
	})
	t.Run("camera refuses", func(t *testing.T) {
		wrong := e.mustCreate("/v1/cameras", e.keyA, `{"name":"porch","protocol":"rtsp","host":"127.0.0.1","port":8554,
			"username":"viewer","password":"wrong","streams":{"high":"/h"},"snapshot_url":"`+camSrv.URL+`/snap.jpg"}`)
		final := take(e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+wrong+`"}`))
		if final["status"] != "failed" || !strings.Contains(fmt.Sprint(final["error"]), "HTTP 401") {
			t.Fatalf("snapshot %v, want failed: HTTP 401", final)
		}
	})
	t.Run("no snapshot URL", func(t *testing.T) {
		if code, out := e.do("POST", "/v1/channels/"+channel("")+"/snapshots", e.keyA, `{"source":"agent"}`); code != 400 {
			t.Fatalf("camera without snapshot_url: %d %v, want 400", code, out)
		}
	})
	if strings.Contains(logs.String(), "snap-secret") {
		t.Fatal("the camera password reached the logs")
	}
}

// TestAgentSnapshotOffline: a camera whose agent is not connected fails its
// snapshot with "agent offline" (after the 10 s offline bound).
func TestAgentSnapshotOffline(t *testing.T) {
	t.Parallel() // waits out the offline bound
	e := newControlEnv(t, api.Options{})
	cam := e.mustCreate("/v1/cameras", e.keyA, `{"name":"porch","protocol":"rtsp","host":"127.0.0.1","port":8554,
		"streams":{"high":"/h"},"snapshot_url":"http://127.0.0.1:1/snap.jpg"}`)
	ch := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	code, sn := e.do("POST", "/v1/channels/"+ch+"/snapshots", e.keyA, `{"source":"agent"}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, sn)
	}
	final := e.waitStatus("/v1/snapshots/"+sn["id"].(string), e.keyA, "pending")
	if final["status"] != "failed" || final["error"] != "agent offline" {
		t.Fatalf("snapshot %v, want failed: agent offline", final)
	}
}

// TestAgentSnapshotNeedsAnAgent: a camera with no agent cannot be captured.
func TestAgentSnapshotNeedsAnAgent(t *testing.T) {
	e := newTemporalEnv(t, api.Options{}) // account A has no agent here
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	ch := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	code, out := e.do("POST", "/v1/channels/"+ch+"/snapshots", e.keyA, `{"source":"agent"}`)
	if code != 400 || !strings.Contains(fmt.Sprint(out), "no agent") {
		t.Fatalf("agent snapshot of a camera without agent: %d %v, want 400", code, out)
	}
}

// TestControlChannelAuth: only a valid agent key opens the channel.
func TestControlChannelAuth(t *testing.T) {
	e := newControlEnv(t, api.Options{})
	u, _ := agent.ControlURL(e.url)
	for _, key := range []string{"", "agt_wrong", e.keyA} {
		_, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + key}})
		if err == nil || resp == nil || resp.StatusCode != 401 {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Errorf("key %q: dial err %v, status %d; want 401", key, err, status)
		}
	}
	c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + agentKey}})
	if err != nil {
		t.Fatalf("agent key refused: %v", err)
	}
	c.Close()
}

package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/api"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/temporaltest"
	"github.com/opennvr/vms/workflows/contract"
)

// state is a channel view's recording state.
func state(t *testing.T, ch map[string]any) map[string]any {
	t.Helper()
	st, ok := ch["state"].(map[string]any)
	if !ok {
		t.Fatalf("channel without a state: %v", ch)
	}
	return st
}

func TestChannelRecordingSettings(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	e := newEnv(t, st, api.Options{})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	highOnly := e.mustCreate("/v1/cameras", e.keyA, `{"name":"porch","protocol":"rtsp","host":"127.0.0.1","streams":{"high":"/h"}}`)
	lowOnly := e.mustCreate("/v1/cameras", e.keyA, `{"name":"yard","protocol":"rtsp","host":"127.0.0.1","streams":{"low":"/l"}}`)
	mjpeg := e.mustCreate("/v1/cameras", e.keyA, `{"name":"old","protocol":"mjpeg","host":"127.0.0.1","streams":{"mjpeg":"/video.mjpg"}}`)

	code, ch := e.do("POST", "/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	if code != 201 || ch["recording"] != "continuous" || ch["record_quality"] != "high" {
		t.Fatalf("create with defaults: %d %v", code, ch)
	}
	if s := state(t, ch); s["status"] != contract.StateStarting || s["since"] == nil || s["last_segment_end"] != nil || s["last_error"] != "" {
		t.Errorf("new channel's state %v, want starting since its creation, no segment, no error", s)
	}
	id := ch["id"].(string)

	creates := []struct {
		name, body, recording, quality string
	}{
		{"off at low", `{"camera_id":"` + cam + `","recording":"off","record_quality":"low"}`, "off", "low"},
		{"mid", `{"camera_id":"` + cam + `","record_quality":"mid"}`, "continuous", "mid"},
		{"best stream the camera has", `{"camera_id":"` + lowOnly + `"}`, "continuous", "low"},
		{"nothing to record", `{"camera_id":"` + mjpeg + `"}`, "off", "high"},
		{"off without the stream", `{"camera_id":"` + highOnly + `","recording":"off","record_quality":"low"}`, "off", "low"},
	}
	for _, tc := range creates {
		t.Run("create "+tc.name, func(t *testing.T) {
			code, out := e.do("POST", "/v1/channels", e.keyA, tc.body)
			if code != 201 || out["recording"] != tc.recording || out["record_quality"] != tc.quality {
				t.Fatalf("%d %v, want %s at %s", code, out, tc.recording, tc.quality)
			}
			want := contract.StateStarting
			if tc.recording == "off" {
				want = contract.StateOff
			}
			if s := state(t, out); s["status"] != want {
				t.Errorf("state %v, want %s", s, want)
			}
		})
	}

	patches := []struct {
		body, recording, quality, status string
		retention                        float64
	}{
		{`{"record_quality":"mid"}`, "continuous", "mid", contract.StateStarting, 30},
		{`{"recording":"off"}`, "off", "mid", contract.StateOff, 30},
		{`{"retention_days":5}`, "off", "mid", contract.StateOff, 5},
		{`{"recording":"continuous","record_quality":"low","retention_days":6}`, "continuous", "low", contract.StateStarting, 6},
	}
	for _, p := range patches {
		code, out := e.do("PATCH", "/v1/channels/"+id, e.keyA, p.body)
		if code != 200 || out["recording"] != p.recording || out["record_quality"] != p.quality || out["retention_days"] != p.retention {
			t.Fatalf("PATCH %s: %d %v", p.body, code, out)
		}
		if s := state(t, out); s["status"] != p.status {
			t.Errorf("PATCH %s: state %v, want %s", p.body, s, p.status)
		}
		code, got := e.do("GET", "/v1/channels/"+id, e.keyA, "")
		if code != 200 || got["recording"] != p.recording || got["record_quality"] != p.quality || state(t, got)["status"] != p.status {
			t.Fatalf("GET after PATCH %s: %d %v", p.body, code, got)
		}
	}

	// What the supervisor reports shows, and the newest segment's end.
	chID := mustUUID(t, id)
	since := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	if err := st.SetChannelState(context.Background(), chID, store.ChannelState{Status: contract.StateRetrying, Since: since, LastError: "camera refused the connection"}); err != nil {
		t.Fatal(err)
	}
	end := since.Add(30 * time.Second)
	r := &store.Recording{ChannelID: chID, SessionID: chID, Key: recording.RecordingKey(chID, chID, since),
		Start: since, End: end, DurationMS: 30000, Size: 100, Codec: "h264"}
	if _, err := st.AddRecording(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	wantState := func(where string, s map[string]any) {
		t.Helper()
		if s["status"] != contract.StateRetrying || s["last_error"] != "camera refused the connection" ||
			s["since"] != since.Format(time.RFC3339Nano) || s["last_segment_end"] != end.Format(time.RFC3339Nano) {
			t.Errorf("%s: state %v, want retrying since %s, last segment end %s", where, s, since.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
		}
	}
	_, got := e.do("GET", "/v1/channels/"+id, e.keyA, "")
	wantState("GET", state(t, got))
	_, list := e.do("GET", "/v1/channels", e.keyA, "")
	listed := 0
	for _, it := range list["items"].([]any) {
		item := it.(map[string]any)
		if item["id"] == id {
			wantState("list", state(t, item))
		} else if s := state(t, item); s["last_segment_end"] != nil {
			t.Errorf("channel %v without recordings shows a last segment end", item["id"])
		}
		listed++
	}
	if listed != 1+len(creates) {
		t.Errorf("listed %d channels, want %d", listed, 1+len(creates))
	}
	// Switched off, a channel says so whatever the supervisor last said.
	_, got = e.do("PATCH", "/v1/channels/"+id, e.keyA, `{"recording":"off"}`)
	if s := state(t, got); s["status"] != contract.StateOff || s["last_error"] != "" {
		t.Errorf("off channel's state %v, want off without an error", s)
	}

	bad := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown mode", "POST", "/v1/channels", `{"camera_id":"` + cam + `","recording":"sometimes"}`, 400, "invalid_request"},
		{"unknown quality", "POST", "/v1/channels", `{"camera_id":"` + cam + `","record_quality":"mjpeg"}`, 400, "invalid_request"},
		{"camera without the quality", "POST", "/v1/channels", `{"camera_id":"` + highOnly + `","record_quality":"low"}`, 400, "invalid_request"},
		{"continuous without any stream", "POST", "/v1/channels", `{"camera_id":"` + mjpeg + `","recording":"continuous"}`, 400, "invalid_request"},
		{"wrong type", "POST", "/v1/channels", `{"camera_id":"` + cam + `","recording":true}`, 400, "invalid_type"},
		{"patch unknown mode", "PATCH", "/v1/channels/" + id, `{"recording":"motion"}`, 400, "invalid_request"},
		{"patch unknown quality", "PATCH", "/v1/channels/" + id, `{"record_quality":"ultra"}`, 400, "invalid_request"},
		{"patch retention", "PATCH", "/v1/channels/" + id, `{"retention_days":0}`, 400, "invalid_request"},
		{"patch camera", "PATCH", "/v1/channels/" + id, `{"camera_id":"` + cam + `"}`, 400, "unknown_field"},
		{"patch nvr", "PATCH", "/v1/channels/" + id, `{"nvr_id":"` + cam + `"}`, 400, "unknown_field"},
		{"patch bad json", "PATCH", "/v1/channels/" + id, `{"recording":`, 400, "invalid_json"},
		{"patch bad id", "PATCH", "/v1/channels/nope", `{}`, 400, "invalid_id"},
		{"patch unknown channel", "PATCH", "/v1/channels/00000000-0000-0000-0000-000000000000", `{}`, 404, "not_found"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			code, out := e.do(tc.method, tc.path, e.keyA, tc.body)
			if code != tc.status || errorCode(out) != tc.code {
				t.Fatalf("%d %v, want %d %s", code, out, tc.status, tc.code)
			}
		})
	}
	// A camera without the stream of the quality asked for, on PATCH.
	onHigh := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+highOnly+`"}`)
	if code, out := e.do("PATCH", "/v1/channels/"+onHigh, e.keyA, `{"record_quality":"mid"}`); code != 400 || errorCode(out) != "invalid_request" {
		t.Errorf("PATCH to a quality the camera lacks: %d %v, want 400", code, out)
	}
	if code, out := e.do("PATCH", "/v1/channels/"+onHigh, e.keyB, `{"recording":"off"}`); code != 404 {
		t.Errorf("PATCH another account's channel: %d %v, want 404", code, out)
	}
	if _, out := e.do("GET", "/v1/channels/"+onHigh, e.keyA, ""); out["record_quality"] != "high" || out["recording"] != "continuous" {
		t.Errorf("refused PATCHes changed the channel: %v", out)
	}
}

// signalCount counts the signals called name a workflow has received.
func signalCount(t *testing.T, tc client.Client, workflowID, name string) int {
	t.Helper()
	n := 0
	it := tc.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == name {
			n++
		}
	}
	return n
}

// TestChannelSupervisorWiring: creating a channel starts its supervisor;
// changing what it records, draining its NVR, or deleting it, signals the
// supervisor. A
// stand-in supervisor takes the signals, so the test checks the API's side
// whatever ChannelWorkflow does with them.
func TestChannelSupervisorWiring(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Temporal dev server")
	}
	tc, _ := temporaltest.Start(t)
	queue := temporaltest.Worker(t, tc, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(func(ctx workflow.Context, _ contract.ChannelInput) error {
			changed := workflow.GetSignalChannel(ctx, contract.SignalChannelChanged)
			for {
				changed.Receive(ctx, nil)
			}
		}, workflow.RegisterOptions{Name: "ChannelWorkflow"})
	})
	objects, _ := s3test.Start(t)
	e := newEnvWith(t, storetest.Open(t, "sqlite"), objects, api.Options{Temporal: tc, TaskQueue: queue})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	ch := e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	wid := contract.ChannelWorkflowID(ch)
	desc, err := tc.DescribeWorkflowExecution(context.Background(), wid, "")
	if err != nil {
		t.Fatalf("no supervisor for the new channel: %v", err)
	}
	if info := desc.GetWorkflowExecutionInfo(); info.GetType().GetName() != "ChannelWorkflow" || info.GetTaskQueue() != queue {
		t.Fatalf("workflow %s runs %s on %s", wid, info.GetType().GetName(), info.GetTaskQueue())
	}

	_, view := e.do("GET", "/v1/channels/"+ch, e.keyA, "")
	nvr, _ := view["nvr_id"].(string)
	steps := []struct {
		method, path, body string
		want               int // channel-changed signals so far
	}{
		{"PATCH", "/v1/channels/" + ch, `{"retention_days":3}`, 0},
		{"PATCH", "/v1/channels/" + ch, `{"record_quality":"high"}`, 0},
		{"PATCH", "/v1/channels/" + ch, `{"record_quality":"low"}`, 1},
		{"PATCH", "/v1/channels/" + ch, `{"recording":"off"}`, 2},
		// Draining the NVR tells the supervisors of its channels.
		{"PATCH", "/v1/nvrs/" + nvr, `{"status":"draining"}`, 3},
		{"PATCH", "/v1/nvrs/" + nvr, `{"status":"active"}`, 3},
		{"DELETE", "/v1/channels/" + ch, ``, 4},
	}
	for _, s := range steps {
		want := http.StatusOK
		if s.method == "DELETE" {
			want = http.StatusNoContent
		}
		if code, out := e.do(s.method, s.path, e.keyA, s.body); code != want {
			t.Fatalf("%s %s: %d %v", s.method, s.body, code, out)
		}
		// A signal that arrives while a workflow task runs is written
		// when it ends.
		n := 0
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			n = signalCount(t, tc, wid, contract.SignalChannelChanged)
			if n >= s.want || time.Now().After(deadline) {
				break
			}
		}
		if n != s.want {
			t.Errorf("after %s %s: %d %s signals, want %d", s.method, s.body, n, contract.SignalChannelChanged, s.want)
		}
	}
}

package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/agent"
	"github.com/opennvr/vms/api"
	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/streamtoken"
	"github.com/opennvr/vms/temporaltest"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

// scriptedAgent is an agent's control connection driven by the test: it
// hands every command it receives to the test and acks it ok, started.
func (e *controlEnv) scriptedAgent() <-chan control.Command {
	e.t.Helper()
	u, _ := agent.ControlURL(e.url)
	conn, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + agentKey}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	received := make(chan control.Command, 16)
	go func() {
		for {
			var cmd control.Command
			if conn.ReadJSON(&cmd) != nil {
				return
			}
			received <- cmd
			if conn.WriteJSON(control.Ack{V: control.Version, ID: cmd.ID, OK: true, Started: true}) != nil {
				return
			}
		}
	}()
	return received
}

// send delivers cmd to the test's agent through Temporal, as a channel's
// supervisor does, and returns the ack and the workflow's id.
func (e *controlEnv) send(cmd control.Command) (control.Ack, string, error) {
	e.t.Helper()
	cmd.V, cmd.ID = control.Version, uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := contract.AgentCommandWorkflowID(cmd.ID)
	run, err := e.opts.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: e.opts.TaskQueue},
		workflows.AgentCommandWorkflow, contract.AgentCommandInput{AgentID: e.agent.ID.String(), Command: cmd,
			OfflineAfter: e.opts.AgentOfflineAfter, AckTimeout: e.opts.AgentAckTimeout})
	if err != nil {
		e.t.Fatal(err)
	}
	var ack control.Ack
	err = run.Get(ctx, &ack)
	return ack, id, err
}

// history is a workflow's event history as JSON.
func (e *controlEnv) history(workflowID string) string {
	e.t.Helper()
	var out strings.Builder
	it := e.opts.Temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := json.Marshal(ev)
		out.Write(b)
	}
	return out.String()
}

// streamInput is the input a session's workflow was started with.
func (e *controlEnv) streamInput(sessionID string) contract.StreamInput {
	e.t.Helper()
	it := e.opts.Temporal.GetWorkflowHistory(context.Background(), contract.StreamWorkflowID(sessionID), "", false, 0)
	ev, err := it.Next()
	if err != nil {
		e.t.Fatal(err)
	}
	var in contract.StreamInput
	if err := converter.GetDefaultDataConverter().FromPayloads(ev.GetWorkflowExecutionStartedEventAttributes().GetInput(), &in); err != nil {
		e.t.Fatal(err)
	}
	return in
}

// storeChannel adds a channel of camera directly in the store: no
// supervisor runs for it, so the test alone talks to the agent.
func (e *controlEnv) storeChannel(accountID uuid.UUID, camera string) string {
	e.t.Helper()
	ch := &store.Channel{AccountID: accountID, CameraID: uuid.MustParse(camera), RetentionDays: 7}
	if err := e.store.CreateChannel(context.Background(), ch); err != nil {
		e.t.Fatal(err)
	}
	return ch.ID.String()
}

// TestRecordCommandFilledByHub: the replica holding the agent's connection
// adds the camera stream of the record command's quality, credentials
// included, and a fresh record token for the channel's NVR; none of it
// enters the Temporal history. Commands about a channel of another camera
// are refused before they reach the agent.
func TestRecordCommandFilledByHub(t *testing.T) {
	signer, err := streamtoken.NewSigner(strings.Repeat("s", 32))
	if err != nil {
		t.Fatal(err)
	}
	e := newControlEnv(t, api.Options{Tokens: signer})
	received := e.scriptedAgent()
	cam := e.mustCreate("/v1/cameras", e.keyA, `{"name":"gate","protocol":"rtsp","host":"127.0.0.1","port":8554,
		"username":"viewer","password":"`+cameraSecret+`","streams":{"high":"/h","low":"/l?ch=2"}}`)
	ch := e.storeChannel(e.acctA.ID, cam)

	ack, id, err := e.send(control.Command{Type: control.TypeRecord, CameraID: cam, ChannelID: ch, Quality: "low"})
	if err != nil || !ack.OK || !ack.Started {
		t.Fatalf("record: %+v, %v", ack, err)
	}
	got := <-received
	if got.Type != control.TypeRecord || got.Camera == nil || got.Stream == nil {
		t.Fatalf("the agent received %+v", got)
	}
	if want := "rtsp://viewer:" + cameraSecret + "@127.0.0.1:8554/l?ch=2"; got.Camera.StreamURL != want || got.Camera.Protocol != "rtsp" {
		t.Errorf("camera = %q %q, want %q rtsp", got.Camera.StreamURL, got.Camera.Protocol, want)
	}
	claims, err := signer.Verify(got.Stream.Token, time.Now())
	if err != nil {
		t.Fatalf("stream token: %v", err)
	}
	sid, err := uuid.Parse(got.Stream.SessionID)
	if err != nil || sid.Version() != 7 || claims.SessionID != got.Stream.SessionID || !claims.Record ||
		claims.ChannelID != ch || claims.Quality != "low" || claims.WorkerURL != "ws://127.0.0.1:1/v1/ingest" ||
		got.Stream.WorkerURL != claims.WorkerURL {
		t.Errorf("stream %+v, claims %+v; want a record token of a new v7 session of %s at low on the NVR", got.Stream, claims, ch)
	}
	if h := e.history(id); strings.Contains(h, cameraSecret) || strings.Contains(h, got.Stream.Token) {
		t.Error("the camera password or the stream token entered the Temporal history")
	}

	// A record stream resuming asks for record tokens; the session a record
	// token authorizes is a record session.
	code, tok := e.do("POST", "/internal/v1/agent/stream-tokens", agentKey, `{"channel_id":"`+ch+`","quality":"high","record":true}`)
	if code != 201 {
		t.Fatalf("agent record token: %d %v", code, tok)
	}
	if claims, err := signer.Verify(tok["token"].(string), time.Now()); err != nil || !claims.Record || claims.Quality != "high" {
		t.Fatalf("agent record token claims %+v, %v", claims, err)
	}
	if code, out := e.do("POST", "/internal/v1/sessions/authorize", workerKey, `{"token":"`+tok["token"].(string)+`","worker":"w1"}`); code != 200 {
		t.Fatalf("authorize a record token: %d %v", code, out)
	}
	if in := e.streamInput(tok["session_id"].(string)); !in.Record || in.ChannelID != ch {
		t.Fatalf("session input %+v, want a record session of %s", in, ch)
	}
	code, tok = e.do("POST", "/internal/v1/agent/stream-tokens", agentKey, `{"channel_id":"`+ch+`","quality":"high"}`)
	if claims, err := signer.Verify(fmt.Sprint(tok["token"]), time.Now()); code != 201 || err != nil || claims.Record {
		t.Fatalf("agent token without record: %d %+v %v", code, claims, err)
	}
	if code, out := e.do("POST", "/v1/channels/"+ch+"/stream-tokens", e.keyA, `{"quality":"high","record":true}`); code != 400 {
		t.Fatalf("an app asking for a record token: %d %v, want 400", code, out)
	}

	ack, _, err = e.send(control.Command{Type: control.TypeStopRecord, CameraID: cam, ChannelID: ch})
	if err != nil || !ack.OK {
		t.Fatalf("stop-record: %+v, %v", ack, err)
	}
	if got := <-received; got.Type != control.TypeStopRecord || got.ChannelID != ch || got.Camera != nil || got.Stream != nil {
		t.Errorf("the agent received %+v, want stop-record without camera or stream", got)
	}

	other := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	otherCh := e.storeChannel(e.acctA.ID, other)
	bad := []struct {
		name string
		cmd  control.Command
		want string
	}{
		{"channel of another camera", control.Command{Type: control.TypeRecord, CameraID: cam, ChannelID: otherCh, Quality: "high"}, "not one of this camera"},
		{"unknown channel", control.Command{Type: control.TypeRecord, CameraID: cam, ChannelID: uuid.NewString(), Quality: "high"}, "not one of this camera"},
		{"channel not a UUID", control.Command{Type: control.TypeRecord, CameraID: cam, ChannelID: "nope", Quality: "high"}, "not a UUID"},
		{"camera without that stream", control.Command{Type: control.TypeRecord, CameraID: cam, ChannelID: ch, Quality: "mid"}, "no mid stream"},
		{"camera of no agent", control.Command{Type: control.TypeStopRecord, CameraID: uuid.NewString(), ChannelID: ch}, "not assigned to this agent"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.send(tc.cmd)
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != control.ErrBadCommand || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %s saying %q", err, control.ErrBadCommand, tc.want)
			}
		})
	}
	select {
	case got := <-received:
		t.Fatalf("an invalid command reached the agent: %+v", got)
	default:
	}
	if strings.Contains(logs.String(), cameraSecret) {
		t.Fatal("the camera password reached the logs")
	}
}

// waitAgentOnline polls GET /v1/cameras/{id} until agent_online is want.
func (e *controlEnv) waitAgentOnline(cam string, want bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out := e.do("GET", "/v1/cameras/"+cam, e.keyA, "")
		if code != 200 {
			e.t.Fatalf("GET camera: %d %v", code, out)
		}
		if out["agent_online"] == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("agent_online = %v, want %v", out["agent_online"], want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAgentOnline: a camera shows its agent online while the agent's
// control connection lives; the supervisor of each of the agent's channels
// hears that the agent is back; a stale online mark (a replica that died)
// reads as offline.
func TestAgentOnline(t *testing.T) {
	e := newControlEnv(t, api.Options{})
	cam := e.mustCreate("/v1/cameras", e.keyA, cameraJSON)
	noAgent := e.mustCreate("/v1/cameras", e.keyB, cameraJSON)
	e.waitAgentOnline(cam, false)

	// Stand-ins for the channels' supervisors: they count agent-online
	// signals.
	queue := temporaltest.Worker(t, e.opts.Temporal, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(func(ctx workflow.Context) (int, error) {
			workflow.GetSignalChannel(ctx, contract.SignalAgentOnline).Receive(ctx, nil)
			return 1, nil
		}, workflow.RegisterOptions{Name: "AwaitAgentOnline"})
	})
	var runs []client.WorkflowRun
	for range 3 {
		ch := e.storeChannel(e.acctA.ID, cam)
		run, err := e.opts.Temporal.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
			ID: contract.ChannelWorkflowID(ch), TaskQueue: queue, WorkflowExecutionTimeout: time.Minute}, "AwaitAgentOnline")
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run)
	}

	stop := e.runAgent(e.url)
	e.waitAgentOnline(cam, true)
	for i, run := range runs {
		var n int
		if err := run.Get(context.Background(), &n); err != nil || n != 1 {
			t.Fatalf("supervisor %d: %d, %v; want the agent-online signal", i, n, err)
		}
	}
	code, out := e.do("GET", "/v1/cameras", e.keyA, "")
	if code != 200 || !strings.Contains(fmt.Sprint(out["items"]), "agent_online:true") {
		t.Fatalf("camera list: %d %v, want agent_online true", code, out)
	}
	if code, out := e.do("GET", "/v1/cameras/"+noAgent, e.keyB, ""); code != 200 || out["agent_online"] != false {
		t.Fatalf("camera without an agent: %d %v, want agent_online false", code, out)
	}

	stop()
	e.waitAgentOnline(cam, false)

	// Marked online by a replica that died a minute ago.
	if _, err := e.store.DB.NewUpdate().Model((*store.Agent)(nil)).Set("online = ?", true).
		Set("last_seen_at = ?", time.Now().Add(-time.Minute).UTC()).Where("id = ?", e.agent.ID).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.waitAgentOnline(cam, false)
	if err := e.store.SetAgentOnline(context.Background(), e.agent.ID, true); err != nil {
		t.Fatal(err)
	}
	e.waitAgentOnline(cam, true) // the same mark, fresh
}

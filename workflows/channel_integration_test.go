package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

// TestIntegrationChannelSupervisor: on the real dev server, the start pass
// gives a channel its supervisor (once, however often it runs), the
// supervisor commands the camera's agent, and the recording session the
// agent starts tells it when it is live and when it ends.
func TestIntegrationChannelSupervisor(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	channelID := cl.ch.ID.String()

	// The agent: a worker on the agent's queue, as the API replica holding
	// its connection runs. A record command starts a recording session the
	// way the media worker does (authorize with a record token, then started).
	var mu sync.Mutex
	var sessions []uuid.UUID
	pushing := false
	agentWorker := worker.New(cl.c, control.TaskQueue(cl.agent.ID.String()), worker.Options{})
	agentWorker.RegisterActivityWithOptions(func(ctx context.Context, cmd control.Command) (control.Ack, error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case cmd.Type == control.TypeStopRecord:
			pushing = false
			return control.Done(cmd.ID), nil
		case pushing:
			return control.Done(cmd.ID), nil
		}
		sid := uuid.Must(uuid.NewV7())
		if _, err := cl.authorizeStream(ctx, contract.StreamInput{SessionID: sid.String(), ChannelID: cmd.ChannelID,
			Quality: cmd.Quality, SegmentLength: 4 * time.Second, Record: true}); err != nil {
			return control.Failed(cmd.ID, err), nil
		}
		if err := cl.c.SignalWorkflow(ctx, contract.StreamWorkflowID(sid.String()), "", contract.SignalStarted, nil); err != nil {
			return control.Ack{}, err
		}
		sessions, pushing = append(sessions, sid), true
		ack := control.Done(cmd.ID)
		ack.Started = true
		return ack, nil
	}, activity.RegisterOptions{Name: control.ActivityName})
	if err := agentWorker.Start(); err != nil {
		t.Fatal(err)
	}
	defer agentWorker.Stop()

	for range 2 {
		if n, err := workflows.StartSupervisors(ctx, cl.c, cl.tq, cl.st); err != nil || n < 1 {
			t.Fatalf("start pass: %d channels, %v", n, err)
		}
	}
	cl.listed(t, "RecordingState='recording' AND ChannelID='"+channelID+"'", contract.ChannelWorkflowID(channelID))
	ch, err := cl.st.ChannelByID(ctx, cl.ch.ID)
	if err != nil || ch.StateStatus != contract.StateRecording || ch.StateSince == nil {
		t.Fatalf("stored state %q since %v (%v), want recording", ch.StateStatus, ch.StateSince, err)
	}

	// The session ends (the agent's stream died): the supervisor starts
	// another after its grace.
	mu.Lock()
	first := sessions[0]
	pushing = false
	mu.Unlock()
	cl.signalStream(t, first, contract.SignalStopped, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(sessions)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no second recording session after the first ended")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cl.listed(t, "RecordingState='recording' AND ChannelID='"+channelID+"'", contract.ChannelWorkflowID(channelID))

	// Deleting the channel ends its supervisor.
	if err := cl.st.DeleteChannel(ctx, cl.acct.ID, cl.ch.ID); err != nil {
		t.Fatal(err)
	}
	if err := workflows.SignalChannel(ctx, cl.c, channelID, contract.SignalChannelChanged, nil); err != nil {
		t.Fatal(err)
	}
	supervisor := cl.c.GetWorkflow(ctx, contract.ChannelWorkflowID(channelID), "")
	waitRun(t, supervisor, 30*time.Second)
	cl.recordHistory(t, "channel-supervisor", supervisor)
	cl.recordHistory(t, "stream-session-record", cl.c.GetWorkflow(ctx, contract.StreamWorkflowID(first.String()), ""))
}

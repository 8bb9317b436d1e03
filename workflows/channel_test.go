package workflows_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/google/uuid"
	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

// fakeAgent answers the supervisor's commands as the camera's agent would,
// as a test scripts it, and keeps what it was sent and when (test clock).
type fakeAgent struct {
	env *testsuite.TestWorkflowEnvironment

	mu     sync.Mutex
	cmds   []control.Command
	at     []time.Time
	answer func(n int, cmd control.Command) (control.Ack, error) // n counts record commands from 1
	record int
	// pushing: the agent has a stream of the channel, so a record command
	// is answered Started=false, as the real agent does.
	pushing bool
}

func (a *fakeAgent) activity(_ context.Context, cmd control.Command) (control.Ack, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cmds, a.at = append(a.cmds, cmd), append(a.at, a.env.Now())
	switch {
	case cmd.Type == control.TypeStopRecord:
		a.pushing = false
		return control.Done(cmd.ID), nil
	case a.pushing:
		a.record++
		return control.Done(cmd.ID), nil
	}
	a.record++
	ack, err := a.answer(a.record, cmd)
	a.pushing = err == nil && ack.Started
	return ack, err
}

// streamDied: the agent's stream ended (a camera failure, an agent restart).
func (a *fakeAgent) streamDied() {
	a.mu.Lock()
	a.pushing = false
	a.mu.Unlock()
}

// types lists the command types sent, in order.
func (a *fakeAgent) types() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, c := range a.cmds {
		out = append(out, c.Type)
	}
	return out
}

// recordTimes lists when record commands were sent.
func (a *fakeAgent) recordTimes() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []time.Time
	for i, c := range a.cmds {
		if c.Type == control.TypeRecord {
			out = append(out, a.at[i])
		}
	}
	return out
}

func started(id string) control.Ack { a := control.Done(id); a.Started = true; return a }

// supervisorEnv is a ChannelWorkflow of the world's channel in the SDK's
// test environment, with the real activities on SQLite and a fake agent.
type supervisorEnv struct {
	*testsuite.TestWorkflowEnvironment
	w     *world
	agent *fakeAgent
}

func newSupervisorEnv(t *testing.T, answer func(n int, cmd control.Command) (control.Ack, error)) *supervisorEnv {
	t.Helper()
	w := newWorld(t)
	env := newEnv(t, w)
	agent := &fakeAgent{env: env, answer: answer}
	env.RegisterActivityWithOptions(agent.activity, activity.RegisterOptions{Name: control.ActivityName})
	return &supervisorEnv{TestWorkflowEnvironment: env, w: w, agent: agent}
}

// at runs fn at d into the test.
func (e *supervisorEnv) at(d time.Duration, fn func()) { e.RegisterDelayedCallback(fn, d) }

func (e *supervisorEnv) session(id, status string) {
	e.SignalWorkflow(contract.SignalSession, contract.SessionSignal{SessionID: id, Status: status})
}

// state reads the channel's stored state and the workflow's.
func (e *supervisorEnv) state(t *testing.T) (*store.Channel, contract.RecordingState) {
	t.Helper()
	ch, err := e.w.st.ChannelByID(context.Background(), e.w.ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.QueryWorkflow(contract.QueryRecordingState)
	if err != nil {
		t.Fatal(err)
	}
	var st contract.RecordingState
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return ch, st
}

// expect checks the stored and queried state at a point of the test.
func (e *supervisorEnv) expect(t *testing.T, what, status, lastError string) {
	t.Helper()
	ch, st := e.state(t)
	if ch.StateStatus != status || st.Status != status || ch.StateError != lastError || st.LastError != lastError {
		t.Errorf("%s: stored %q (%q), workflow %q (%q); want %q (%q)", what, ch.StateStatus, ch.StateError, st.Status, st.LastError, status, lastError)
	}
	// The API stamps a new channel's first state with the wall clock; the
	// workflow's later ones use the test clock.
	if status != contract.StateStarting && (ch.StateSince == nil || !ch.StateSince.Equal(st.Since.Truncate(time.Millisecond))) {
		t.Errorf("%s: stored since %v, workflow since %v", what, ch.StateSince, st.Since)
	}
}

// deleteChannel deletes the channel and tells the supervisor, which ends.
func (e *supervisorEnv) deleteChannel(t *testing.T) {
	t.Helper()
	if err := e.w.st.DeleteChannel(context.Background(), e.w.acct.ID, e.w.ch.ID); err != nil {
		t.Error(err)
	}
	e.SignalWorkflow(contract.SignalChannelChanged, nil)
}

func (e *supervisorEnv) run(t *testing.T, in contract.ChannelInput) {
	t.Helper()
	in.ChannelID = e.w.ch.ID.String()
	e.ExecuteWorkflow(workflows.ChannelWorkflow, in)
	if !e.IsWorkflowCompleted() {
		t.Fatal("supervisor still running at the end of the test")
	}
}

// TestChannelRecordsAndRestarts: the supervisor starts the stream, is
// recording once the session is live, starts the stream again when the
// session ends, and stops it and ends when the channel is deleted.
func TestChannelRecordsAndRestarts(t *testing.T) {
	e := newSupervisorEnv(t, func(n int, cmd control.Command) (control.Ack, error) { return started(cmd.ID), nil })
	e.at(time.Second, func() {
		e.expect(t, "before the session is live", contract.StateStarting, "")
		e.session("s1", contract.SessionLive)
	})
	e.at(2*time.Second, func() { e.expect(t, "session live", contract.StateRecording, "") })
	e.at(10*time.Minute, func() {
		e.agent.streamDied()
		e.session("s1", contract.SessionLost)
	})
	e.at(10*time.Minute+time.Second, func() {
		// Within the grace the agent may resume by itself: still recording.
		if got := len(e.agent.recordTimes()); got != 2 {
			t.Errorf("record commands within the resume grace: %d, want 2 (the first, one 5 minutes later while recording)", got)
		}
	})
	e.at(10*time.Minute+10*time.Second, func() {
		e.expect(t, "session ended, stream started again", contract.StateStarting, "the recording session ended")
		e.session("s2", contract.SessionLive)
	})
	e.at(10*time.Minute+11*time.Second, func() {
		e.expect(t, "second session live", contract.StateRecording, "")
		if _, st := e.state(t); st.Restarts != 1 || st.SessionID != "s2" {
			t.Errorf("restarts %d, session %q; want 1, s2", st.Restarts, st.SessionID)
		}
	})
	e.at(11*time.Minute, func() { e.deleteChannel(t) })
	e.run(t, contract.ChannelInput{})

	if err := e.GetWorkflowError(); err != nil {
		t.Fatalf("supervisor of a deleted channel: %v, want a clean end", err)
	}
	want := []string{control.TypeRecord, control.TypeRecord, control.TypeRecord, control.TypeStopRecord}
	if got := e.agent.types(); !slices.Equal(got, want) {
		t.Fatalf("commands %v, want %v", got, want)
	}
	for _, c := range e.agent.cmds {
		if c.ChannelID != e.w.ch.ID.String() || c.CameraID != e.w.ch.CameraID.String() || c.Camera != nil || c.Stream != nil {
			t.Fatalf("command %+v: want the channel and camera ids only (credentials are added on the way out)", c)
		}
	}
	if q := e.agent.cmds[0].Quality; q != "high" {
		t.Fatalf("record quality %q, want high", q)
	}
}

// TestChannelAgentResumesByItself: a session that ends and is replaced by
// the agent's own reconnect within the grace costs no record command.
func TestChannelAgentResumesByItself(t *testing.T) {
	e := newSupervisorEnv(t, func(n int, cmd control.Command) (control.Ack, error) { return started(cmd.ID), nil })
	e.at(time.Second, func() { e.session("s1", contract.SessionLive) })
	e.at(time.Minute, func() { e.session("s1", contract.SessionEnded) })
	e.at(time.Minute+2*time.Second, func() { e.session("s2", contract.SessionLive) })
	e.at(2*time.Minute, func() {
		e.expect(t, "resumed", contract.StateRecording, "")
		if n := len(e.agent.recordTimes()); n != 1 {
			t.Errorf("record commands: %d, want 1", n)
		}
		e.deleteChannel(t)
	})
	e.run(t, contract.ChannelInput{})
}

// TestChannelCameraRefuses: a camera that refuses is retried with a
// growing, capped backoff, never in a tight loop, and the reason shows.
func TestChannelCameraRefuses(t *testing.T) {
	const refusal = "camera refused the credentials (401)"
	e := newSupervisorEnv(t, func(n int, cmd control.Command) (control.Ack, error) {
		return control.Failed(cmd.ID, errors.New(refusal)), nil
	})
	e.at(5*time.Second, func() { e.expect(t, "refused", contract.StateRetrying, refusal) })
	e.at(4*time.Minute, func() {
		e.expect(t, "still refused", contract.StateRetrying, refusal)
		e.deleteChannel(t)
	})
	e.run(t, contract.ChannelInput{MaxBackoff: 20 * time.Second})

	times := e.agent.recordTimes()
	if len(times) < 10 || len(times) > 30 {
		t.Fatalf("%d record commands in 4 minutes with a 20 s cap, want 10 to 30", len(times))
	}
	for i := 1; i < len(times); i++ {
		gap := times[i].Sub(times[i-1])
		if gap < 500*time.Millisecond || gap > 20*time.Second {
			t.Errorf("retry %d after %s: want between 0.5 s and the 20 s cap", i, gap)
		}
		if i >= 6 && gap < 10*time.Second {
			t.Errorf("retry %d after %s: want the backoff near its cap (jitter keeps it ≥ cap/2)", i, gap)
		}
	}
}

// TestChannelAgentOffline: an offline agent is waited for, and the stream
// starts as soon as the agent is back.
func TestChannelAgentOffline(t *testing.T) {
	var mu sync.Mutex
	online := false
	e := newSupervisorEnv(t, func(n int, cmd control.Command) (control.Ack, error) {
		mu.Lock()
		defer mu.Unlock()
		if !online {
			return control.Ack{}, temporal.NewNonRetryableApplicationError("no connection", control.ErrOffline, nil)
		}
		return started(cmd.ID), nil
	})
	e.at(30*time.Second, func() { e.expect(t, "agent away", contract.StateAgentOffline, "agent offline") })
	e.at(40*time.Second, func() {
		mu.Lock()
		online = true
		mu.Unlock()
		e.SignalWorkflow(contract.SignalAgentOnline, nil)
	})
	e.at(41*time.Second, func() {
		times := e.agent.recordTimes()
		if last := times[len(times)-1]; last.Before(t0.Add(40 * time.Second)) {
			t.Errorf("last record command at %s, want one right after the agent came back", last.Sub(t0))
		}
		e.expect(t, "agent back", contract.StateStarting, "agent offline")
		e.session("s1", contract.SessionLive)
	})
	e.at(42*time.Second, func() {
		e.expect(t, "recording", contract.StateRecording, "")
		e.deleteChannel(t)
	})
	e.run(t, contract.ChannelInput{})
	if n := len(e.agent.recordTimes()); n > 3 {
		t.Fatalf("%d record commands in 40 s of an offline agent: it should wait for it, not poll", n)
	}
}

// TestChannelAgentBusy: an agent that has no room for the record command
// (many channels starting together) is asked again within a couple of
// seconds, the channel stays starting (never retrying, no backoff), and
// records once the agent takes the command.
func TestChannelAgentBusy(t *testing.T) {
	const busyTimes = 4
	e := newSupervisorEnv(t, func(n int, cmd control.Command) (control.Ack, error) {
		if n <= busyTimes {
			return control.Busy(cmd.ID, errors.New("agent busy: no record slot came free in time")), nil
		}
		return started(cmd.ID), nil
	})
	var seen []string
	for s := 500 * time.Millisecond; s < 10*time.Second; s += 500 * time.Millisecond {
		e.at(s, func() {
			_, st := e.state(t)
			if len(seen) == 0 || seen[len(seen)-1] != st.Status {
				seen = append(seen, st.Status)
			}
		})
	}
	e.at(10*time.Second, func() {
		e.session("s1", contract.SessionLive)
	})
	e.at(11*time.Second, func() {
		e.expect(t, "recording", contract.StateRecording, "")
		e.deleteChannel(t)
	})
	e.run(t, contract.ChannelInput{})

	if !slices.Equal(seen, []string{contract.StateStarting}) {
		t.Errorf("states while the agent was busy: %v, want only starting", seen)
	}
	times := e.agent.recordTimes()
	if len(times) < busyTimes+1 {
		t.Fatalf("%d record commands, want %d busy answers and one more", len(times), busyTimes)
	}
	for i := 1; i <= busyTimes; i++ {
		// The supervisor draws the wait from [1 s, 2 s].
		if gap := times[i].Sub(times[i-1]); gap < time.Second || gap > 2*time.Second {
			t.Errorf("record command %d sent %s after a busy answer, want 1 s to 2 s", i+1, gap)
		}
	}
}

// TestChannelOffAndOn: mode off stops the stream (and one that shows up
// again), continuous starts it again.
func TestChannelOffAndOn(t *testing.T) {
	e := newSupervisorEnv(t, func(n int, cmd control.Command) (control.Ack, error) { return started(cmd.ID), nil })
	setMode := func(mode string) {
		e.w.ch.Recording = mode
		if _, err := e.w.st.DB.NewUpdate().Model(e.w.ch).Column("recording").WherePK().Exec(context.Background()); err != nil {
			t.Error(err)
		}
		e.SignalWorkflow(contract.SignalChannelChanged, nil)
	}
	e.at(time.Second, func() { e.session("s1", contract.SessionLive) })
	e.at(time.Minute, func() { setMode(contract.RecordingOff) })
	e.at(time.Minute+time.Second, func() {
		e.expect(t, "off", contract.StateOff, "")
		e.session("s1", contract.SessionEnded)
		// A stream the agent started before it heard of the stop.
		e.session("s2", contract.SessionLive)
	})
	e.at(2*time.Minute, func() {
		e.expect(t, "still off", contract.StateOff, "")
		setMode(contract.RecordingContinuous)
	})
	e.at(2*time.Minute+time.Second, func() { e.session("s3", contract.SessionLive) })
	e.at(2*time.Minute+2*time.Second, func() {
		e.expect(t, "on again", contract.StateRecording, "")
		e.deleteChannel(t)
	})
	e.run(t, contract.ChannelInput{})
	want := []string{control.TypeRecord, control.TypeStopRecord, control.TypeStopRecord, control.TypeRecord, control.TypeStopRecord}
	if got := e.agent.types(); !slices.Equal(got, want) {
		t.Fatalf("commands %v, want %v", got, want)
	}
}

// TestChannelNeverLive: a stream the agent says it started but that never
// reaches the media worker is a failed start.
func TestChannelNeverLive(t *testing.T) {
	e := newSupervisorEnv(t, func(n int, cmd control.Command) (control.Ack, error) { return started(cmd.ID), nil })
	e.at(31*time.Second, func() {
		e.expect(t, "no session", contract.StateRetrying, "no stream reached the media worker within 30s")
	})
	e.at(3*time.Minute, func() { e.deleteChannel(t) })
	e.run(t, contract.ChannelInput{MaxBackoff: 10 * time.Second})
	if n := len(e.agent.recordTimes()); n < 3 || n > 8 {
		t.Fatalf("%d record commands in 3 minutes, want a few (30 s start timeout plus backoff)", n)
	}
}

// TestChannelQualityMissing: a channel set to a quality its camera does not
// have retries with a clear error, and records once the quality is back.
func TestChannelQualityMissing(t *testing.T) {
	e := newSupervisorEnv(t, func(n int, cmd control.Command) (control.Ack, error) { return started(cmd.ID), nil })
	e.w.ch.RecordQuality = "mid"
	if _, err := e.w.st.DB.NewUpdate().Model(e.w.ch).Column("record_quality").WherePK().Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.at(5*time.Second, func() { e.expect(t, "no mid stream", contract.StateRetrying, "the camera has no mid stream") })
	e.at(time.Minute, func() {
		if n := len(e.agent.recordTimes()); n != 0 {
			t.Errorf("%d record commands for a quality the camera lacks", n)
		}
		e.w.ch.RecordQuality = "high"
		if _, err := e.w.st.DB.NewUpdate().Model(e.w.ch).Column("record_quality").WherePK().Exec(context.Background()); err != nil {
			t.Error(err)
		}
		e.SignalWorkflow(contract.SignalChannelChanged, nil)
	})
	e.at(time.Minute+time.Second, func() { e.session("s1", contract.SessionLive) })
	e.at(time.Minute+2*time.Second, func() {
		e.expect(t, "quality back", contract.StateRecording, "")
		e.deleteChannel(t)
	})
	e.run(t, contract.ChannelInput{})
}

// TestChannelContinuesAsNew: a long-failing channel's history is bounded;
// the next run carries the state.
func TestChannelContinuesAsNew(t *testing.T) {
	e := newSupervisorEnv(t, func(n int, cmd control.Command) (control.Ack, error) {
		return control.Failed(cmd.ID, errors.New("camera unreachable")), nil
	})
	e.run(t, contract.ChannelInput{MaxBackoff: 2 * time.Second})
	var can *workflow.ContinueAsNewError
	if err := e.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new", err)
	}
	var next contract.ChannelInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.ChannelID != e.w.ch.ID.String() || next.State.Status != contract.StateRetrying ||
		next.State.LastError != "camera unreachable" || next.Failures < 100 || next.MaxBackoff != 2*time.Second {
		t.Fatalf("next run's input %+v: want the channel, its state and failures carried", next)
	}
}

// TestChannelMovesOffDrainingNVR: a channel whose NVR is drained moves to a
// healthy NVR, and its stream is restarted there.
func TestChannelMovesOffDrainingNVR(t *testing.T) {
	e := newSupervisorEnv(t, func(n int, cmd control.Command) (control.Ack, error) { return started(cmd.ID), nil })
	ctx := context.Background()
	other := &store.NVR{Name: "nvr-other", MediaURL: "ws://127.0.0.1:2/v1/ingest", Capacity: 10}
	if err := e.w.st.CreateNVR(ctx, other); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uuid.UUID{e.w.ch.NVRID, other.ID} {
		if _, err := e.w.st.TouchNVR(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	e.at(time.Second, func() { e.session("s1", contract.SessionLive) })
	e.at(time.Minute, func() {
		if _, err := e.w.st.SetNVRStatus(ctx, e.w.ch.NVRID, store.NVRDraining); err != nil {
			t.Error(err)
		}
		e.SignalWorkflow(contract.SignalChannelChanged, nil)
	})
	e.at(time.Minute+time.Second, func() {
		ch, _ := e.state(t)
		if ch.NVRID != other.ID {
			t.Errorf("channel on NVR %s after its NVR was drained, want %s", ch.NVRID, other.ID)
		}
		e.session("s2", contract.SessionLive)
	})
	e.at(time.Minute+2*time.Second, func() {
		e.expect(t, "recording on the other NVR", contract.StateRecording, "")
		e.deleteChannel(t)
	})
	e.run(t, contract.ChannelInput{})
	want := []string{control.TypeRecord, control.TypeStopRecord, control.TypeRecord, control.TypeStopRecord}
	if got := e.agent.types(); !slices.Equal(got, want) {
		t.Fatalf("commands %v, want %v", got, want)
	}
}

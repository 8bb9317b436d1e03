package workflows

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/workflows/contract"
)

const (
	// recordStartTimeout is how long a started stream has to go live.
	recordStartTimeout = 30 * time.Second
	// recordResumeGrace is how long the supervisor lets the agent resume an
	// ended session by itself (it reconnects to a media worker with a fresh
	// token) before it sends the record command again.
	recordResumeGrace = 5 * time.Second
	// recordHealthyAfter: a session live this long resets the backoff.
	recordHealthyAfter = time.Minute
	recordMinBackoff   = time.Second
	// agentOfflinePoll is how often an offline agent is tried without an
	// agent-online signal (one lost with a replica crash, say).
	agentOfflinePoll = time.Minute
	// recordEnsureInterval: while recording, the record command is sent
	// again this often (it is idempotent on the agent), so a stream that died
	// without a word is restarted.
	recordEnsureInterval = 5 * time.Minute
	// channelLoopsPerRun bounds one run's history.
	channelLoopsPerRun = 200
	// agentBusyRetry: a record command the agent had no room for is sent
	// again after [d/2, d]; not a failure, so no backoff and no retrying.
	agentBusyRetry = 2 * time.Second
	// versionAgentBusy: a busy agent's answer is retried soon instead of
	// counting as a failure.
	versionAgentBusy = "agent-busy"
)

// ChannelWorkflow supervises a channel's recording for the channel's whole
// life. While the channel's mode is continuous it keeps one recording
// session alive: it commands the camera's agent to record (the agent opens
// the camera and pushes it to the channel's media worker), waits for the
// session to go live, and when the start fails or the session ends it
// starts again after a capped, jittered backoff. An offline agent is waited
// for (the API signals agent-online when it reconnects). Mode off stops the
// session; deleting the channel ends the workflow. Every state change is
// stored for the API and set as the RecordingState search attribute.
func ChannelWorkflow(ctx workflow.Context, in contract.ChannelInput) error {
	w := &channelWorkflow{
		in:       in,
		changed:  workflow.GetSignalChannel(ctx, contract.SignalChannelChanged),
		online:   workflow.GetSignalChannel(ctx, contract.SignalAgentOnline),
		sessions: workflow.GetSignalChannel(ctx, contract.SignalSession),
	}
	if err := w.setup(ctx); err != nil {
		return err
	}
	return w.run(ctx)
}

type channelWorkflow struct {
	in        contract.ChannelInput // carries the state across runs
	target    activities.RecordingTarget
	liveSince time.Time
	loops     int
	commands  int

	changed, online, sessions workflow.ReceiveChannel
}

// wake says why a wait ended.
type wake int

const (
	wakeTimer   wake = iota
	wakeChanged      // the channel changed
	wakeOnline       // the agent reconnected
	wakeSession      // a session went live or ended
)

func (w *channelWorkflow) setup(ctx workflow.Context) error {
	if w.in.State.Status == "" {
		w.in.State = contract.RecordingState{Status: contract.StateStarting, Since: workflow.Now(ctx)}
	}
	err := workflow.SetQueryHandler(ctx, contract.QueryRecordingState, func() (contract.RecordingState, error) {
		return w.in.State, nil
	})
	if err != nil {
		return err
	}
	return upsertKeywords(ctx, keyword{contract.ChannelIDKey, w.in.ChannelID},
		keyword{contract.RecordingStateKey, w.in.State.Status})
}

func (w *channelWorkflow) run(ctx workflow.Context) error {
	ctx = withActivities(ctx, 30*time.Second)
	for {
		if w.loops >= channelLoopsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return w.continueAsNew(ctx)
		}
		w.loops++
		if err := workflow.ExecuteActivity(ctx, acts.ReadRecordingTarget, w.in.ChannelID).Get(ctx, &w.target); err != nil {
			return err
		}
		switch {
		case !w.target.Exists:
			w.stopRecording(ctx)
			workflow.GetLogger(ctx).Info("channel deleted: supervisor ends", "channel", w.in.ChannelID)
			return nil
		case w.target.Mode == contract.RecordingOff:
			if err := w.off(ctx); err != nil {
				return err
			}
			continue
		case w.target.Problem != "":
			if err := w.failed(ctx, w.target.Problem); err != nil {
				return err
			}
			continue
		}
		if w.target.Moved {
			// The stream goes to a dead or draining NVR: stop it, so the
			// record command below starts it on the new one.
			w.stopRecording(ctx)
			w.in.Live = nil
		}
		w.in.CameraID, w.in.AgentID = w.target.CameraID, w.target.AgentID
		started, err := w.record(ctx)
		if err != nil {
			return err
		}
		if started {
			if err := w.watch(ctx); err != nil {
				return err
			}
		}
	}
}

// record sends the agent the record command; false means it failed (the
// state and the wait are done).
func (w *channelWorkflow) record(ctx workflow.Context) (bool, error) {
	if len(w.in.Live) == 0 && w.in.State.Status != contract.StateStarting && w.in.State.Status != contract.StateRetrying {
		if err := w.setState(ctx, contract.StateStarting, w.in.State.LastError); err != nil {
			return false, err
		}
	}
	ack, err := w.command(ctx, control.TypeRecord)
	switch {
	case activities.HasErrorType(err, control.ErrOffline):
		return false, w.agentOffline(ctx)
	case err != nil:
		return false, w.failed(ctx, applicationMessage(err))
	case !ack.OK && ack.Busy && workflow.GetVersion(ctx, versionAgentBusy, workflow.DefaultVersion, 1) == 1:
		// Thousands of channels of one agent starting together: the
		// agent runs a few at once and asked for this one again.
		w.agentBusy(ctx)
		return false, nil
	case !ack.OK:
		return false, w.failed(ctx, ack.Error)
	}
	if ack.Started {
		// The agent had no stream of this channel: sessions still counted
		// live are stale (an agent or media worker that died). Signals of
		// the new stream are still queued, not yet counted.
		if w.in.State.Streams > 0 {
			w.in.State.Restarts++
		}
		w.in.State.Streams++
		w.in.Live = nil
	}
	return true, nil
}

// watch follows the stream once the agent has it: recording while a
// session is live; back to the caller (which re-reads the channel and
// commands the agent again) when the channel changes, the agent reconnects,
// the session ends and does not resume, or it never goes live.
func (w *channelWorkflow) watch(ctx workflow.Context) error {
	deadline := workflow.Now(ctx).Add(recordStartTimeout)
	for {
		now := workflow.Now(ctx)
		switch {
		case len(w.in.Live) > 0:
			if w.in.State.Status != contract.StateRecording {
				w.liveSince = now
				if err := w.setState(ctx, contract.StateRecording, ""); err != nil {
					return err
				}
			}
			if w.wait(ctx, recordEnsureInterval) != wakeSession {
				return nil
			}
		case w.in.State.Status == contract.StateRecording:
			// The session ended. The agent may resume it on its own (a new
			// session on a media worker reconnect); give it a moment.
			if now.Sub(w.liveSince) >= recordHealthyAfter {
				w.in.Failures = 0
			}
			if r := w.wait(ctx, recordResumeGrace); r == wakeSession {
				continue
			} else if r != wakeTimer {
				return nil
			}
			if w.in.Failures == 0 {
				// A healthy session ended: restart at once.
				w.in.Failures++
				return w.setState(ctx, contract.StateStarting, "the recording session ended")
			}
			return w.failed(ctx, "the recording session ended")
		default:
			left := deadline.Sub(now)
			if left <= 0 {
				return w.failed(ctx, fmt.Sprintf("no stream reached the media worker within %s", recordStartTimeout))
			}
			if r := w.wait(ctx, left); r == wakeChanged || r == wakeOnline {
				return nil
			}
		}
	}
}

// failed records why recording is not running and waits out the backoff
// (a channel change cuts it short).
func (w *channelWorkflow) failed(ctx workflow.Context, reason string) error {
	w.in.Failures++
	if err := w.setState(ctx, contract.StateRetrying, reason); err != nil {
		return err
	}
	until := workflow.Now(ctx).Add(w.backoff())
	for {
		left := until.Sub(workflow.Now(ctx))
		if left <= 0 {
			return nil
		}
		switch w.wait(ctx, left) {
		case wakeTimer, wakeChanged:
			return nil
		case wakeSession:
			if len(w.in.Live) > 0 {
				// The agent resumed by itself.
				return nil
			}
		}
	}
}

// agentBusy waits a moment before the record command goes again, keeping
// the state (starting); a channel change or a live session cuts it short.
func (w *channelWorkflow) agentBusy(ctx workflow.Context) {
	until := workflow.Now(ctx).Add(jitter(w.in.ChannelID+"/busy/"+strconv.Itoa(w.commands), agentBusyRetry))
	for {
		left := until.Sub(workflow.Now(ctx))
		if left <= 0 {
			return
		}
		if r := w.wait(ctx, left); r == wakeChanged || (r == wakeSession && len(w.in.Live) > 0) {
			return
		}
	}
}

// agentOffline waits for the camera's agent to reconnect (or for the
// channel to change), retrying now and then without a signal.
func (w *channelWorkflow) agentOffline(ctx workflow.Context) error {
	if err := w.setState(ctx, contract.StateAgentOffline, "agent offline"); err != nil {
		return err
	}
	for {
		if r := w.wait(ctx, agentOfflinePoll); r != wakeSession || len(w.in.Live) > 0 {
			return nil
		}
	}
}

// off stops the channel's stream and waits for the channel to change. A
// stream that shows up meanwhile (an agent that missed the stop while it
// was offline) is stopped again.
func (w *channelWorkflow) off(ctx workflow.Context) error {
	if w.in.State.Status != contract.StateOff {
		w.stopRecording(ctx)
		w.in.Live, w.in.Failures = nil, 0
		if err := w.setState(ctx, contract.StateOff, ""); err != nil {
			return err
		}
	}
	for {
		switch w.wait(ctx, 0) {
		case wakeChanged:
			return nil
		case wakeOnline:
			w.stopRecording(ctx)
		case wakeSession:
			if len(w.in.Live) > 0 {
				w.stopRecording(ctx)
				w.in.Live = nil
			}
		}
	}
}

// stopRecording tells the agent to stop the channel's stream, best effort:
// an agent that is offline has no stream to stop or is told again when it
// reconnects (see off).
func (w *channelWorkflow) stopRecording(ctx workflow.Context) {
	if w.target.Exists {
		w.in.CameraID, w.in.AgentID = w.target.CameraID, w.target.AgentID
	}
	if w.in.AgentID == "" {
		return
	}
	if _, err := w.command(ctx, control.TypeStopRecord); err != nil {
		workflow.GetLogger(ctx).Info("stop-record not delivered", "channel", w.in.ChannelID, "err", err)
	}
}

// command sends the agent a record or stop-record command. Its id is
// unique and deterministic: the run id and a counter.
func (w *channelWorkflow) command(ctx workflow.Context, typ string) (control.Ack, error) {
	w.commands++
	cmd := control.Command{
		V: control.Version, Type: typ,
		ID:       workflow.GetInfo(ctx).WorkflowExecution.RunID + "-" + strconv.Itoa(w.commands),
		CameraID: w.in.CameraID, ChannelID: w.in.ChannelID,
	}
	if typ == control.TypeRecord {
		cmd.Quality = w.target.Quality
	}
	return sendAgentCommand(ctx, w.in.AgentID, cmd, 0, 0)
}

// wait blocks until a signal arrives or d passes (d <= 0: no timer).
// Session signals are applied to the live set before it returns.
func (w *channelWorkflow) wait(ctx workflow.Context, d time.Duration) wake {
	got := wakeTimer
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(w.changed, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		got = wakeChanged
	})
	sel.AddReceive(w.online, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		got = wakeOnline
	})
	sel.AddReceive(w.sessions, func(c workflow.ReceiveChannel, _ bool) {
		var s contract.SessionSignal
		c.Receive(ctx, &s)
		w.onSession(s)
		got = wakeSession
	})
	cancel := func() {}
	if d > 0 {
		var timerCtx workflow.Context
		timerCtx, cancel = workflow.WithCancel(ctx)
		sel.AddFuture(workflow.NewTimer(timerCtx, d), func(workflow.Future) { got = wakeTimer })
	}
	sel.Select(ctx)
	if got != wakeTimer {
		cancel()
	}
	return got
}

func (w *channelWorkflow) onSession(s contract.SessionSignal) {
	live := slices.Contains(w.in.Live, s.SessionID)
	switch {
	case s.Status == contract.SessionLive && !live:
		w.in.Live = append(w.in.Live, s.SessionID)
	case s.Status != contract.SessionLive && live:
		w.in.Live = slices.DeleteFunc(w.in.Live, func(id string) bool { return id == s.SessionID })
	}
}

// backoff is the wait after the n-th failure in a row: doubling from
// recordMinBackoff up to the cap, drawn from [d/2, d] so channels that
// failed together do not retry in lockstep. The draw is a hash of the
// channel and n: deterministic, as workflow code must be.
func (w *channelWorkflow) backoff() time.Duration {
	maxBackoff := w.in.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = contract.DefaultRecordMaxBackoff
	}
	d := recordMinBackoff
	for i := 1; i < w.in.Failures && d < maxBackoff; i++ {
		d *= 2
	}
	return jitter(w.in.ChannelID+"/"+strconv.Itoa(w.in.Failures), min(d, maxBackoff))
}

// jitter draws a wait from [d/2, d] by a hash of key: deterministic, as
// workflow code must be, and spread over channels.
func jitter(key string, d time.Duration) time.Duration {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return d/2 + time.Duration(uint64(d/2)*uint64(h.Sum32())>>32)
}

// setState is the one place a channel's recording state changes: the
// stored state the API shows, the workflow's state (with its time) and the
// RecordingState search attribute. An unchanged state costs nothing.
func (w *channelWorkflow) setState(ctx workflow.Context, status, lastError string) error {
	st := w.in.State
	if st.Status == status && st.LastError == lastError {
		return nil
	}
	if st.Status != status {
		st.Since = workflow.Now(ctx)
	}
	st.Status, st.LastError = status, lastError
	if len(w.in.Live) > 0 {
		st.SessionID = w.in.Live[len(w.in.Live)-1]
	} else {
		st.SessionID = ""
	}
	err := workflow.ExecuteActivity(ctx, acts.SetRecordingState, activities.RecordingStateInput{
		ChannelID: w.in.ChannelID, State: st,
	}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.in.State = st
	return upsertKeywords(ctx, keyword{contract.RecordingStateKey, status})
}

// continueAsNew starts a fresh run, taking the queued session signals
// first (the others only make the next run re-read the channel, which it
// does anyway).
func (w *channelWorkflow) continueAsNew(ctx workflow.Context) error {
	for {
		var s contract.SessionSignal
		if !w.sessions.ReceiveAsync(&s) {
			break
		}
		w.onSession(s)
	}
	for w.changed.ReceiveAsync(nil) {
	}
	for w.online.ReceiveAsync(nil) {
	}
	return workflow.NewContinueAsNewError(ctx, ChannelWorkflow, w.in)
}

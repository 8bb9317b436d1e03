package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/workflows/contract"
)

const (
	// authorizeWithin is how long a session waits for its authorization.
	authorizeWithin = 2 * time.Minute
	// streamSegmentsPerRun bounds one run's history: after this many
	// segments a session continues as new.
	streamSegmentsPerRun = 200
)

// StreamSessionWorkflow is one live stream, from its token's single use to
// its end. The authorize update (validated: one use only) checks the channel
// and creates the session; then the media worker's signals drive it: started
// (live), segment (record it, wake the clips waiting on the channel),
// stopped (ended). With no segment for twice the segment length the session
// is lost.
func StreamSessionWorkflow(ctx workflow.Context, in contract.StreamInput) error {
	w := &streamWorkflow{
		in:       in,
		started:  workflow.GetSignalChannel(ctx, contract.SignalStarted),
		segments: workflow.GetSignalChannel(ctx, contract.SignalSegment),
		stopped:  workflow.GetSignalChannel(ctx, contract.SignalStopped),
	}
	if err := w.setup(ctx); err != nil {
		return err
	}
	return w.run(ctx)
}

type streamWorkflow struct {
	in          contract.StreamInput // carries the session's state across runs
	authorizing bool                 // an authorize update is being handled
	refused     bool                 // authorization failed for good: the token is spent
	updatedAt   time.Time

	started, segments, stopped workflow.ReceiveChannel
	stopping                   bool
	lostTimer                  workflow.Future // pending, if any
	segmentsThisRun            int
}

func (w *streamWorkflow) setup(ctx workflow.Context) error {
	w.updatedAt = workflow.Now(ctx)
	err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateAuthorize, w.authorize,
		workflow.UpdateHandlerOptions{Validator: w.validateAuthorize})
	if err != nil {
		return err
	}
	return upsertKeywords(ctx, keyword{contract.ChannelIDKey, w.in.ChannelID})
}

// validateAuthorize makes the token single use: once one authorize has been
// accepted, every other is refused, in this run and the continued ones.
func (w *streamWorkflow) validateAuthorize(ctx workflow.Context, req contract.AuthorizeRequest) error {
	if w.in.Authorized || w.authorizing || w.refused {
		return temporal.NewApplicationError("token already used", ErrTokenUsed)
	}
	return nil
}

func (w *streamWorkflow) authorize(ctx workflow.Context, req contract.AuthorizeRequest) (recording.Grant, error) {
	w.authorizing = true // before any wait: a concurrent second authorize is refused
	defer func() { w.authorizing = false }()
	ctx = withAnswerActivities(ctx)
	if err := workflow.ExecuteActivity(ctx, acts.CheckChannel, w.in.ChannelID).Get(ctx, nil); err != nil {
		if activities.HasErrorType(err, activities.ErrChannelInactive) {
			w.refused = true
			return recording.Grant{}, temporal.NewApplicationError(applicationMessage(err), activities.ErrChannelInactive)
		}
		// A transient failure leaves the token unused: the worker may retry.
		return recording.Grant{}, err
	}
	err := workflow.ExecuteActivity(ctx, acts.CreateSession, activities.CreateSessionInput{
		SessionID: w.in.SessionID, ChannelID: w.in.ChannelID, Quality: w.in.Quality, Worker: req.Worker,
	}).Get(ctx, nil)
	if err != nil {
		if activities.HasErrorType(err, activities.ErrChannelDeleted) {
			w.refused = true
			return recording.Grant{}, temporal.NewApplicationError("channel was deleted", activities.ErrChannelInactive)
		}
		return recording.Grant{}, err
	}
	now := workflow.Now(ctx)
	w.in.Authorized, w.in.Worker, w.in.Status, w.in.LastSeen, w.updatedAt = true, req.Worker, contract.SessionAuthorized, now, now
	return recording.Grant{
		SessionID: w.in.SessionID, ChannelID: w.in.ChannelID, Quality: w.in.Quality,
		SegmentSeconds: int(w.segmentLength().Seconds()),
	}, nil
}

func (w *streamWorkflow) run(ctx workflow.Context) error {
	ctx = withActivities(ctx, 30*time.Second)
	if !w.in.Authorized {
		if _, err := workflow.AwaitWithTimeout(ctx, authorizeWithin, func() bool { return w.in.Authorized || w.refused }); err != nil {
			return err
		}
		if err := allHandlersFinished(ctx); err != nil {
			return err
		}
		if !w.in.Authorized {
			// Never authorized, or refused: no session row exists, nothing to record.
			workflow.GetLogger(ctx).Info("stream session not authorized", "session", w.in.SessionID, "refused", w.refused)
			return nil
		}
	}
	for {
		if w.segmentsThisRun >= streamSegmentsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return w.continueAsNew(ctx)
		}
		lost, err := w.next(ctx)
		if err != nil {
			return w.stop(ctx, err)
		}
		if !lost && !w.stopping {
			continue
		}
		// Segments queued behind a stop are still recorded; one queued
		// behind the lost timer proves the stream alive after all.
		if err := w.drain(ctx); err != nil {
			return w.stop(ctx, err)
		}
		switch {
		case w.stopping:
			return w.end(ctx, contract.SessionEnded)
		case w.isLost(ctx):
			return w.end(ctx, contract.SessionLost)
		}
	}
}

// next handles the next signal, or reports the session lost when the stream
// showed no life for twice the segment length.
func (w *streamWorkflow) next(ctx workflow.Context) (lost bool, err error) {
	lostAfter := 2 * w.segmentLength()
	if w.lostTimer == nil {
		// One timer per lost window, re-armed from the last sign of life when
		// it fires: segments arriving on time cancel nothing.
		w.lostTimer = workflow.NewTimer(ctx, max(w.in.LastSeen.Add(lostAfter).Sub(workflow.Now(ctx)), time.Millisecond))
	}
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(w.started, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		err = w.onStarted(ctx)
	})
	sel.AddReceive(w.segments, func(c workflow.ReceiveChannel, _ bool) {
		var rep recording.SegmentReport
		c.Receive(ctx, &rep)
		err = w.onSegment(ctx, rep)
	})
	sel.AddReceive(w.stopped, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		w.stopping = true
	})
	sel.AddFuture(w.lostTimer, func(workflow.Future) {
		w.lostTimer = nil
		lost = w.isLost(ctx)
	})
	sel.Select(ctx)
	return lost, err
}

// isLost: the stream showed no life (authorize, start, segment) for twice
// the segment length.
func (w *streamWorkflow) isLost(ctx workflow.Context) bool {
	return !workflow.Now(ctx).Before(w.in.LastSeen.Add(2 * w.segmentLength()))
}

func (w *streamWorkflow) onStarted(ctx workflow.Context) error {
	w.in.LastSeen = workflow.Now(ctx)
	if w.in.Status != contract.SessionAuthorized {
		return nil
	}
	return w.updateStatus(ctx, contract.SessionLive)
}

// onSegment records a segment and, if it is new, wakes the clips of the
// channel. A re-delivered report records nothing and wakes no one.
func (w *streamWorkflow) onSegment(ctx workflow.Context, rep recording.SegmentReport) error {
	w.in.LastSeen = workflow.Now(ctx)
	if w.in.Status == contract.SessionAuthorized {
		// The started report is missing or late: a segment proves the stream live.
		if err := w.updateStatus(ctx, contract.SessionLive); err != nil {
			return err
		}
	}
	var res activities.RecordSegmentResult
	err := workflow.ExecuteActivity(ctx, acts.RecordSegment, activities.RecordSegmentInput{
		SessionID: w.in.SessionID, ChannelID: w.in.ChannelID, SegmentReport: rep,
	}).Get(ctx, &res)
	if activities.HasErrorType(err, activities.ErrBadInput) {
		workflow.GetLogger(ctx).Warn("segment report dropped", "session", w.in.SessionID, "key", rep.Key, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	w.in.Segments++
	w.segmentsThisRun++
	if !res.Created {
		return nil
	}
	return workflow.ExecuteActivity(ctx, acts.NotifyClips, activities.NotifyClipsInput{
		ChannelID: w.in.ChannelID,
		Segment:   contract.SegmentSignal{RecordingID: res.RecordingID, Start: rep.Start, End: rep.End},
	}).Get(ctx, nil)
}

// drain handles every signal already queued, without waiting for more, so
// nothing is left behind when the run ends. It returns once all three
// channels were found empty with no wait since (so the caller's closing
// command goes out in the same workflow task).
func (w *streamWorkflow) drain(ctx workflow.Context) error {
	for {
		handled := false
		for w.started.ReceiveAsync(nil) {
			handled = true
			if err := w.onStarted(ctx); err != nil {
				return err
			}
		}
		var rep recording.SegmentReport
		for w.segments.ReceiveAsync(&rep) {
			handled = true
			if err := w.onSegment(ctx, rep); err != nil {
				return err
			}
		}
		for w.stopped.ReceiveAsync(nil) {
			w.stopping = true
		}
		if !handled {
			return nil
		}
	}
}

// end records the session's final status, then the segments reported
// while it did so: footage is never dropped.
func (w *streamWorkflow) end(ctx workflow.Context, status string) error {
	if err := w.updateStatus(ctx, status); err != nil {
		return w.stop(ctx, err)
	}
	if err := w.drain(ctx); err != nil {
		return w.stop(ctx, err)
	}
	return allHandlersFinished(ctx)
}

// stop ends the workflow on an activity error: a deleted channel or session
// ends it quietly (the rows are gone), anything else fails it.
func (w *streamWorkflow) stop(ctx workflow.Context, err error) error {
	if activities.HasErrorType(err, activities.ErrChannelDeleted, activities.ErrSessionDeleted) {
		workflow.GetLogger(ctx).Info("stream session's channel deleted", "session", w.in.SessionID)
		return nil
	}
	return err
}

// continueAsNew starts a fresh run of the session, keeping its state (the
// token stays spent) and handling the signals queued first.
func (w *streamWorkflow) continueAsNew(ctx workflow.Context) error {
	if err := w.drain(ctx); err != nil {
		return w.stop(ctx, err)
	}
	if w.stopping {
		return w.end(ctx, contract.SessionEnded)
	}
	if err := allHandlersFinished(ctx); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, StreamSessionWorkflow, w.in)
}

// updateStatus is the one place a session's status changes: the row and the
// workflow's state, with its time, and for a recording session the channel's
// supervisor hears of it. (No search attribute: none is registered for
// sessions; ChannelID is set once.)
func (w *streamWorkflow) updateStatus(ctx workflow.Context, status string) error {
	now := workflow.Now(ctx)
	err := workflow.ExecuteActivity(ctx, acts.SetSessionStatus, activities.SessionStatusInput{
		SessionID: w.in.SessionID, Status: status, At: now,
	}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.in.Status, w.updatedAt = status, now
	if w.in.Record && workflow.GetVersion(ctx, versionRecordSessionSignals, workflow.DefaultVersion, 1) == 1 {
		w.tellSupervisor(ctx, status)
	}
	return nil
}

// versionRecordSessionSignals: recording sessions (Record set, which no
// session before this version had) tell their channel's supervisor when
// they go live and end.
const versionRecordSessionSignals = "record-session-signals"

// tellSupervisor signals the channel's supervisor. A supervisor that is
// gone (the channel was deleted) is not this session's failure.
func (w *streamWorkflow) tellSupervisor(ctx workflow.Context, status string) {
	err := workflow.SignalExternalWorkflow(ctx, contract.ChannelWorkflowID(w.in.ChannelID), "", contract.SignalSession,
		contract.SessionSignal{SessionID: w.in.SessionID, Status: status}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Info("channel supervisor not signalled", "session", w.in.SessionID, "status", status, "err", err)
	}
}

func (w *streamWorkflow) segmentLength() time.Duration {
	if w.in.SegmentLength > 0 {
		return w.in.SegmentLength
	}
	return recording.DefaultSegmentLength
}

package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/workflows/contract"
)

const (
	// clipPoll is the fallback for a lost segment signal: a waiting clip
	// looks for new recordings on its own this often.
	clipPoll = 30 * time.Second
	// clipSignalsPerRun bounds one run's history: after this many segment
	// signals a clip continues as new.
	clipSignalsPerRun = 200
)

// Why a clip fails.
const (
	reasonBadRange       = "invalid range: start must be before end"
	reasonNoRecordings   = "no recordings in range"
	reasonNoStream       = "no stream for the whole deadline"
	reasonClipDeleted    = "the clip was deleted"
	reasonChannelDeleted = "the channel was deleted"
	reasonNoMedia        = "the recordings could not be assembled"
)

// assembleVersion guards the step that writes the clip as one MP4.
const assembleVersion = "assemble-mp4"

// ClipWorkflow gathers the recordings of a clip's range. It appends those
// already stored; while the range reaches past the newest recording it waits
// for segment signals (with a polling fallback) until the range's end plus
// the grace, appending again on each; then it finishes the clip, even with
// partial coverage, or fails it when nothing was recorded.
func ClipWorkflow(ctx workflow.Context, in contract.ClipInput) error {
	w := &clipWorkflow{in: in, status: contract.ClipInProgress, segments: workflow.GetSignalChannel(ctx, contract.SignalSegment)}
	if err := w.setup(ctx); err != nil {
		return err
	}
	return w.run(ctx)
}

type clipWorkflow struct {
	in        contract.ClipInput
	status    string
	reason    string // why it failed
	cov       activities.Coverage
	objectKey string // the assembled MP4, once written
	updatedAt time.Time

	segments workflow.ReceiveChannel
	signals  int             // segment signals received by this run
	poll     workflow.Future // the pending fallback timer, if any
}

func (w *clipWorkflow) setup(ctx workflow.Context) error {
	w.updatedAt = workflow.Now(ctx)
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, w.progress); err != nil {
		return err
	}
	return upsertKeywords(ctx, keyword{contract.ChannelIDKey, w.in.ChannelID}, keyword{contract.ClipStatusKey, w.status})
}

func (w *clipWorkflow) run(ctx workflow.Context) error {
	ctx = withActivities(ctx, time.Minute)
	if !w.in.Start.Before(w.in.End) {
		return w.updateStatus(ctx, contract.ClipFailed, reasonBadRange)
	}
	deadline := w.in.End.Add(w.grace())
	// A continued run has waited already; a first run whose deadline has
	// passed never waits and fails at once if nothing was recorded.
	waited := w.in.Continued
	if err := w.append(ctx); err != nil {
		return w.stop(ctx, err)
	}
	for w.cov.NewestEnd.Before(w.in.End) && workflow.Now(ctx).Before(deadline) {
		if w.signals >= clipSignalsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return w.continueAsNew(ctx)
		}
		waited = true
		w.wait(ctx, deadline)
		if err := w.append(ctx); err != nil {
			return w.stop(ctx, err)
		}
	}
	return w.finish(ctx, waited)
}

// wait returns when a segment signal arrives (having taken every signal
// already queued: one append serves them all) or the fallback timer fires.
func (w *clipWorkflow) wait(ctx workflow.Context, deadline time.Time) {
	if w.poll == nil {
		// The timer outlives a signal-driven wake-up, so a steady stream of
		// signals adds no timer events to the history.
		w.poll = workflow.NewTimer(ctx, w.pollDelay(workflow.Now(ctx), deadline))
	}
	var sig contract.SegmentSignal
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(w.segments, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, &sig)
		w.signals++
	})
	sel.AddFuture(w.poll, func(workflow.Future) { w.poll = nil })
	sel.Select(ctx)
	w.drain()
}

// pollDelay is when to look again without a signal: every clipPoll, but not
// before the range starts (nothing can be recorded for it earlier) and not
// after the deadline.
func (w *clipWorkflow) pollDelay(now, deadline time.Time) time.Duration {
	d := max(clipPoll, w.in.Start.Sub(now))
	return min(d, deadline.Sub(now))
}

// drain takes the segment signals already queued. Their content is only a
// wake-up: the recordings they announce are in the database, which the
// next append reads.
func (w *clipWorkflow) drain() {
	var sig contract.SegmentSignal
	for w.segments.ReceiveAsync(&sig) {
		w.signals++
	}
}

// append links the recordings stored so far and takes their coverage.
func (w *clipWorkflow) append(ctx workflow.Context) error {
	var cov activities.Coverage
	if err := workflow.ExecuteActivity(ctx, acts.AppendClipRecordings, w.in.ClipID).Get(ctx, &cov); err != nil {
		return err
	}
	w.cov, w.updatedAt = cov, workflow.Now(ctx)
	return nil
}

// finish turns the gathered recordings into the clip's outcome: failed when
// nothing was recorded, else (from version 1 of "assemble-mp4") assembled
// into one MP4 object, then finished. Runs recorded before the assembly step
// existed take the DefaultVersion path and replay unchanged.
func (w *clipWorkflow) finish(ctx workflow.Context, waited bool) error {
	if w.cov.CoveredSeconds <= 0 {
		if waited {
			return w.updateStatus(ctx, contract.ClipFailed, reasonNoStream)
		}
		return w.updateStatus(ctx, contract.ClipFailed, reasonNoRecordings)
	}
	if workflow.GetVersion(ctx, assembleVersion, workflow.DefaultVersion, 1) == 1 {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			// An hour-long clip streams ~120 segments; heartbeats (one per
			// segment) tell a stuck upload from a long one.
			StartToCloseTimeout: 30 * time.Minute,
			HeartbeatTimeout:    2 * time.Minute,
			RetryPolicy:         retryForever(),
		})
		var res activities.AssembleResult
		if err := workflow.ExecuteActivity(actx, acts.AssembleClip, w.in.ClipID).Get(ctx, &res); err != nil {
			if activities.HasErrorType(err, activities.ErrNoMedia) {
				return w.updateStatus(ctx, contract.ClipFailed, reasonNoMedia+": "+applicationMessage(err))
			}
			return w.stop(ctx, err)
		}
		w.objectKey = res.ObjectKey
	}
	// Partial coverage still finishes: progress (< 1) records how much.
	return w.updateStatus(ctx, contract.ClipFinished, "")
}

// stop ends the workflow on an activity error: a deleted clip or channel
// ends it quietly, anything else fails it.
func (w *clipWorkflow) stop(ctx workflow.Context, err error) error {
	switch {
	case activities.HasErrorType(err, activities.ErrClipDeleted):
		return w.updateStatus(ctx, contract.ClipFailed, reasonClipDeleted)
	case activities.HasErrorType(err, activities.ErrChannelDeleted):
		return w.updateStatus(ctx, contract.ClipFailed, reasonChannelDeleted)
	}
	return err
}

// continueAsNew starts a fresh run of the same clip. It takes the signals
// queued first (they would be lost with this run); the next run's first
// append reads their recordings from the database.
func (w *clipWorkflow) continueAsNew(ctx workflow.Context) error {
	w.drain()
	next := w.in
	next.Continued = true
	return workflow.NewContinueAsNewError(ctx, ClipWorkflow, next)
}

// updateStatus is the one place a clip's status changes: the row, the
// workflow's state (with its time) and the ClipStatus search attribute.
func (w *clipWorkflow) updateStatus(ctx workflow.Context, status, reason string) error {
	err := workflow.ExecuteActivity(ctx, acts.SetClipStatus, activities.ClipStatusInput{
		ClipID: w.in.ClipID, Status: status, Progress: w.fraction(), ObjectKey: w.objectKey, Error: reason,
	}).Get(ctx, nil)
	if err != nil && !activities.HasErrorType(err, activities.ErrClipDeleted) {
		return err
	}
	w.status, w.reason, w.updatedAt = status, reason, workflow.Now(ctx)
	return upsertKeywords(ctx, keyword{contract.ClipStatusKey, status})
}

func (w *clipWorkflow) progress() (contract.ClipProgress, error) {
	return contract.ClipProgress{
		Status:           w.status,
		CoveredSeconds:   w.cov.CoveredSeconds,
		RequestedSeconds: w.in.End.Sub(w.in.Start).Seconds(),
		Segments:         w.cov.Segments,
		Error:            w.reason,
		UpdatedAt:        w.updatedAt,
	}, nil
}

// fraction is the share of the range covered, 0 to 1.
func (w *clipWorkflow) fraction() float64 {
	requested := w.in.End.Sub(w.in.Start).Seconds()
	if requested <= 0 {
		return 0
	}
	return min(w.cov.CoveredSeconds/requested, 1)
}

func (w *clipWorkflow) grace() time.Duration {
	if w.in.Grace > 0 {
		return w.in.Grace
	}
	return contract.DefaultClipGrace
}

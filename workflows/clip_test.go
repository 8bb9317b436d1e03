package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

func queryProgress(t *testing.T, env interface {
	QueryWorkflow(string, ...any) (converter.EncodedValue, error)
}) contract.ClipProgress {
	t.Helper()
	v, err := env.QueryWorkflow(contract.QueryProgress)
	if err != nil {
		t.Fatalf("query progress: %v", err)
	}
	var p contract.ClipProgress
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClipPastRange(t *testing.T) {
	hourAgo := t0.Add(-2 * time.Hour)
	tests := []struct {
		name         string
		recordings   int // 30 s each from hourAgo
		noObjects    bool
		start, end   time.Time
		wantStatus   string
		wantProgress float64
		wantSegments int
		wantError    string
	}{
		{"fully recorded", 120, false, hourAgo, hourAgo.Add(time.Hour), contract.ClipFinished, 1, 120, ""},
		// Only the first half hour exists: the clip finishes with what there is.
		{"partly recorded", 60, false, hourAgo, hourAgo.Add(time.Hour), contract.ClipFinished, 0.5, 60, ""},
		// Segment edges need not match the range: 15 s of the first, 15 s of the last.
		{"unaligned", 4, false, hourAgo.Add(15 * time.Second), hourAgo.Add(105 * time.Second), contract.ClipFinished, 1, 4, ""},
		{"nothing recorded", 0, false, hourAgo, hourAgo.Add(time.Hour), contract.ClipFailed, 0, 0, "no recordings in range"},
		// Rows without their objects (removed by retention): nothing to
		// assemble, the clip fails saying so.
		{"objects missing", 4, true, hourAgo, hourAgo.Add(2 * time.Minute), contract.ClipFailed, 1, 4,
			"the recordings could not be assembled: assemble clip: no media in range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			recs := w.addRecordings(t, hourAgo, tt.recordings, 30*time.Second)
			if tt.noObjects {
				w.removeObjects(t, recs)
			}
			clip := w.newClip(t, tt.start, tt.end)
			env := newEnv(t, w)
			env.ExecuteWorkflow(workflows.ClipWorkflow, w.clipInput(clip, 2*time.Minute))

			if !env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			if err := env.GetWorkflowError(); err != nil {
				t.Fatalf("workflow error: %v", err)
			}
			// A past range is not waited for.
			if d := env.Now().Sub(t0); d > time.Second {
				t.Errorf("took %s of workflow time, want no wait", d)
			}
			got := w.clip(t, clip.ID)
			if got.Status != tt.wantStatus || !near(got.Progress, tt.wantProgress) || got.Error != tt.wantError {
				t.Errorf("clip = %s progress %.3f error %q, want %s %.3f %q",
					got.Status, got.Progress, got.Error, tt.wantStatus, tt.wantProgress, tt.wantError)
			}
			if got.Status == contract.ClipFinished {
				w.assertAssembled(t, got)
			} else if got.ObjectKey != "" {
				t.Errorf("failed clip has object key %q", got.ObjectKey)
			}
			clipRecs, err := w.st.ClipRecordings(context.Background(), clip.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(clipRecs) != tt.wantSegments {
				t.Errorf("clip holds %d recordings, want %d", len(clipRecs), tt.wantSegments)
			}
			p := queryProgress(t, env)
			if p.Status != tt.wantStatus || p.Segments != tt.wantSegments || p.Error != tt.wantError ||
				!near(p.RequestedSeconds, tt.end.Sub(tt.start).Seconds()) {
				t.Errorf("progress query = %+v", p)
			}
		})
	}
}

// A clip reaching into the future finishes on the segment signals, well
// before its polling fallback would, and its progress follows each signal.
func TestClipFutureRangeFinishesOnSignals(t *testing.T) {
	w := newWorld(t)
	clip := w.newClip(t, t0, t0.Add(90*time.Second))
	env := newEnv(t, w)

	var covered []float64
	for i := range 3 {
		at := time.Duration(5+10*i) * time.Second
		env.RegisterDelayedCallback(func() {
			recs := w.addRecordings(t, t0.Add(time.Duration(30*i)*time.Second), 1, 30*time.Second)
			env.SignalWorkflow(contract.SignalSegment, contract.SegmentSignal{
				RecordingID: recs[0].ID.String(), Start: recs[0].Start, End: recs[0].End})
		}, at)
		if i < 2 {
			env.RegisterDelayedCallback(func() { covered = append(covered, queryProgress(t, env).CoveredSeconds) }, at+time.Second)
		}
	}
	env.ExecuteWorkflow(workflows.ClipWorkflow, w.clipInput(clip, 2*time.Minute))

	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if len(covered) != 2 || covered[0] != 30 || covered[1] != 60 {
		t.Errorf("progress after each signal = %v seconds, want [30 60]", covered)
	}
	if d := env.Now().Sub(t0); d >= 30*time.Second {
		t.Errorf("finished after %s: not woken by the signals", d)
	}
	got := w.clip(t, clip.ID)
	if got.Status != contract.ClipFinished || got.Progress != 1 {
		t.Errorf("clip = %s progress %v, want finished 1", got.Status, got.Progress)
	}
	w.assertAssembled(t, got)
}

// With no stream at all, a clip waits until its range's end plus the grace,
// polling, then fails with the reason.
func TestClipDeadlineWithoutStream(t *testing.T) {
	w := newWorld(t)
	clip := w.newClip(t, t0, t0.Add(time.Minute))
	env := newEnv(t, w)
	appends := 0
	env.SetOnActivityCompletedListener(func(info *activity.Info, _ converter.EncodedValue, _ error) {
		if info.ActivityType.Name == "AppendClipRecordings" {
			appends++
		}
	})
	env.ExecuteWorkflow(workflows.ClipWorkflow, w.clipInput(clip, 2*time.Minute))

	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if d := env.Now().Sub(t0); d != 3*time.Minute {
		t.Errorf("gave up after %s, want 3m (end + grace)", d)
	}
	// Once at start, then every 30 s until the deadline.
	if appends != 7 {
		t.Errorf("%d appends, want 7 (start + a poll every 30 s for 3 min)", appends)
	}
	got := w.clip(t, clip.ID)
	if got.Status != contract.ClipFailed || got.Error != "no stream for the whole deadline" {
		t.Errorf("clip = %s %q, want failed %q", got.Status, got.Error, "no stream for the whole deadline")
	}
}

// A range that ended within the grace still takes a late segment.
func TestClipRecentRangeTakesLateSegment(t *testing.T) {
	w := newWorld(t)
	w.addRecordings(t, t0.Add(-90*time.Second), 1, 30*time.Second)
	clip := w.newClip(t, t0.Add(-90*time.Second), t0.Add(-30*time.Second))
	env := newEnv(t, w)
	env.RegisterDelayedCallback(func() {
		w.addRecordings(t, t0.Add(-60*time.Second), 1, 30*time.Second)
		env.SignalWorkflow(contract.SignalSegment, contract.SegmentSignal{})
	}, 20*time.Second)
	env.ExecuteWorkflow(workflows.ClipWorkflow, w.clipInput(clip, 2*time.Minute))

	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if d := env.Now().Sub(t0); d != 20*time.Second {
		t.Errorf("finished after %s, want 20s (on the late segment)", d)
	}
	got := w.clip(t, clip.ID)
	if got.Status != contract.ClipFinished || got.Progress != 1 {
		t.Errorf("clip = %s progress %v, want finished 1", got.Status, got.Progress)
	}
	w.assertAssembled(t, got)
}

// A failing append is retried; the clip then finishes.
func TestClipAppendRetried(t *testing.T) {
	w := newWorld(t)
	w.addRecordings(t, t0.Add(-time.Hour), 2, 30*time.Second)
	clip := w.newClip(t, t0.Add(-time.Hour), t0.Add(-time.Hour+time.Minute))
	env := newEnv(t, w)
	env.OnActivity(w.acts.AppendClipRecordings, mock.Anything, mock.Anything).
		Return(activities.Coverage{}, errors.New("database is down")).Times(2)
	env.OnActivity(w.acts.AppendClipRecordings, mock.Anything, mock.Anything).
		Return(w.acts.AppendClipRecordings).Once()
	env.ExecuteWorkflow(workflows.ClipWorkflow, w.clipInput(clip, 2*time.Minute))

	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	env.AssertExpectations(t)
	got := w.clip(t, clip.ID)
	if got.Status != contract.ClipFinished || got.Progress != 1 {
		t.Errorf("clip = %s progress %v, want finished 1", got.Status, got.Progress)
	}
	w.assertAssembled(t, got)
}

// A deleted clip ends its workflow quietly.
func TestClipDeleted(t *testing.T) {
	w := newWorld(t)
	clip := w.newClip(t, t0, t0.Add(time.Minute))
	if _, err := w.st.DB.NewDelete().Model((*store.Clip)(nil)).Where("id = ?", clip.ID).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, w)
	env.ExecuteWorkflow(workflows.ClipWorkflow, w.clipInput(clip, time.Minute))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if p := queryProgress(t, env); p.Status != contract.ClipFailed || p.Error != "the clip was deleted" {
		t.Errorf("progress = %+v, want failed: the clip was deleted", p)
	}
}

// After 200 segment signals a clip continues as new, carrying the count,
// including signals that arrived while the last append ran (drained, not
// lost).
func TestClipContinuesAsNewAfterSignals(t *testing.T) {
	w := newWorld(t)
	clip := w.newClip(t, t0, t0.Add(time.Hour))
	env := newEnv(t, w)
	calls := 0
	env.OnActivity(w.acts.AppendClipRecordings, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, clipID string) (activities.Coverage, error) {
			calls++
			if calls == 201 { // the append of the 200th signal: two more arrive meanwhile
				env.SignalWorkflow(contract.SignalSegment, contract.SegmentSignal{})
				env.SignalWorkflow(contract.SignalSegment, contract.SegmentSignal{})
			}
			return activities.Coverage{CoveredSeconds: float64(calls), NewestEnd: t0.Add(time.Duration(calls) * time.Second)}, nil
		})
	for i := 1; i <= 200; i++ {
		// 100 ms apart: all within the first 30 s poll, so every append is a signal's.
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.SignalSegment, contract.SegmentSignal{}) }, time.Duration(i)*100*time.Millisecond)
	}
	env.ExecuteWorkflow(workflows.ClipWorkflow, w.clipInput(clip, time.Minute))

	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	var next contract.ClipInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if !next.Continued || next.ClipID != clip.ID.String() || !next.End.Equal(clip.End) {
		t.Errorf("next run input = %+v, want continued with 202 signals for the same clip", next)
	}
	if calls != 201 {
		t.Errorf("%d appends, want 201 (start + one per signal)", calls)
	}
}

// When the server suggests it, a waiting clip continues as new, and the new
// run picks up from the database.
func TestClipContinuesAsNewWhenSuggested(t *testing.T) {
	w := newWorld(t)
	clip := w.newClip(t, t0, t0.Add(time.Hour))
	env := newEnv(t, w)
	env.SetContinueAsNewSuggested(true)
	env.ExecuteWorkflow(workflows.ClipWorkflow, w.clipInput(clip, time.Minute))
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
}

// The assembly step: a failing upload is retried until it succeeds; a clip
// deleted meanwhile ends its workflow quietly.
func TestClipAssembleErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error // what AssembleClip answers first (twice when retried)
		wantStatus string
		wantError  string
	}{
		{"retried", errors.New("S3 is down"), contract.ClipFinished, ""},
		{"clip deleted", temporal.NewNonRetryableApplicationError("gone", activities.ErrClipDeleted, nil), contract.ClipFailed, "the clip was deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.addRecordings(t, t0.Add(-time.Hour), 2, 30*time.Second)
			clip := w.newClip(t, t0.Add(-time.Hour), t0.Add(-time.Hour+time.Minute))
			env := newEnv(t, w)
			attempts := 0
			env.OnActivity(w.acts.AssembleClip, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, clipID string) (activities.AssembleResult, error) {
					if attempts++; attempts <= 2 {
						return activities.AssembleResult{}, tt.err
					}
					return w.acts.AssembleClip(ctx, clipID)
				})
			env.ExecuteWorkflow(workflows.ClipWorkflow, w.clipInput(clip, time.Minute))

			if err := env.GetWorkflowError(); err != nil {
				t.Fatalf("workflow error: %v", err)
			}
			p := queryProgress(t, env)
			if p.Status != tt.wantStatus || p.Error != tt.wantError {
				t.Errorf("progress = %+v, want %s %q", p, tt.wantStatus, tt.wantError)
			}
			if got := w.clip(t, clip.ID); tt.wantStatus == contract.ClipFinished {
				w.assertAssembled(t, got)
			}
		})
	}
}

package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

// session is a stream session of the world's channel under test.
type session struct {
	w   *world
	env *testsuite.TestWorkflowEnvironment
	id  uuid.UUID
	sig *signals
}

func newSession(t *testing.T, w *world) *session {
	t.Helper()
	sig := &signals{}
	w.acts.Temporal = sig
	return &session{w: w, env: newEnv(t, w), id: uuid.New(), sig: sig}
}

func (s *session) input(segmentLength time.Duration) contract.StreamInput {
	return contract.StreamInput{SessionID: s.id.String(), ChannelID: s.w.ch.ID.String(), Quality: "high", SegmentLength: segmentLength}
}

// authorize runs the authorize update at workflow time at; the outcome
// lands in *grant and *err.
func (s *session) authorize(at time.Duration, grant *recording.Grant, err *error) {
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(contract.UpdateAuthorize, uuid.NewString(), &testsuite.TestUpdateCallback{
			OnReject: func(e error) { *err = e },
			OnComplete: func(v any, e error) {
				*err = e
				if g, ok := v.(recording.Grant); ok {
					*grant = g
				}
			},
		}, contract.AuthorizeRequest{Worker: "nvr-1"})
	}, at)
}

func (s *session) signal(at time.Duration, name string, arg any) {
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(name, arg) }, at)
}

func (s *session) row(t *testing.T) *store.StreamSession {
	t.Helper()
	ss, err := s.w.st.SessionByID(context.Background(), s.id)
	if err != nil {
		t.Fatalf("session row: %v", err)
	}
	return ss
}

func (s *session) mustComplete(t *testing.T) {
	t.Helper()
	if !s.env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
}

func TestStreamAuthorizeOnce(t *testing.T) {
	w := newWorld(t)
	s := newSession(t, w)
	var grant, grant2 recording.Grant
	var err1, err2, err3 error
	s.authorize(0, &grant, &err1)
	s.authorize(time.Second, &grant2, &err2)
	s.signal(2*time.Second, contract.SignalStarted, nil)
	s.authorize(3*time.Second, &grant2, &err3)
	s.signal(4*time.Second, contract.SignalStopped, nil)
	s.env.ExecuteWorkflow(workflows.StreamSessionWorkflow, s.input(30*time.Second))
	s.mustComplete(t)

	want := recording.Grant{SessionID: s.id.String(), ChannelID: w.ch.ID.String(), Quality: "high", SegmentSeconds: 30}
	if err1 != nil || grant != want {
		t.Errorf("first authorize = %+v, %v; want %+v", grant, err1, want)
	}
	for i, err := range []error{err2, err3} {
		if !activities.HasErrorType(err, workflows.ErrTokenUsed) {
			t.Errorf("authorize #%d = %v, want rejected: token already used", i+2, err)
		}
	}
	if row := s.row(t); row.Status != contract.SessionEnded || row.Worker != "nvr-1" || row.StartedAt == nil || row.EndedAt == nil {
		t.Errorf("session row = %+v, want ended by nvr-1 with start and end times", row)
	}
}

func TestStreamChannelInactiveRefused(t *testing.T) {
	w := newWorld(t)
	if _, err := w.st.DB.NewUpdate().Model((*store.Channel)(nil)).Set("status = ?", store.ChannelDisabled).
		Where("id = ?", w.ch.ID).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := newSession(t, w)
	var grant recording.Grant
	var err1, err2 error
	s.authorize(0, &grant, &err1)
	s.authorize(time.Second, &grant, &err2)
	s.env.ExecuteWorkflow(workflows.StreamSessionWorkflow, s.input(30*time.Second))
	s.mustComplete(t)

	if !activities.HasErrorType(err1, activities.ErrChannelInactive) {
		t.Errorf("authorize on a disabled channel = %v, want a ChannelInactive error", err1)
	}
	// The workflow ended at once: the refusal spent the token.
	if d := s.env.Now().Sub(t0); d > time.Second {
		t.Errorf("workflow ran %s after the refusal", d)
	}
	if _, err := w.st.SessionByID(context.Background(), s.id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session row after refusal: %v, want none", err)
	}
}

// A re-delivered segment report records one recording and wakes the clips
// once.
func TestStreamDuplicateSegment(t *testing.T) {
	w := newWorld(t)
	clip := w.newClip(t, t0, t0.Add(time.Hour))
	s := newSession(t, w)
	var grant recording.Grant
	var err error
	seg := w.segment(s.id, t0, 30*time.Second)
	s.authorize(0, &grant, &err)
	s.signal(time.Second, contract.SignalStarted, nil)
	s.signal(30*time.Second, contract.SignalSegment, seg)
	s.signal(31*time.Second, contract.SignalSegment, seg)
	s.signal(32*time.Second, contract.SignalStopped, nil)
	s.env.ExecuteWorkflow(workflows.StreamSessionWorkflow, s.input(30*time.Second))
	s.mustComplete(t)

	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	if n := w.countRecordings(t); n != 1 {
		t.Errorf("%d recordings, want 1", n)
	}
	if n := s.sig.to(contract.ClipWorkflowID(clip.ID.String())); n != 1 {
		t.Errorf("clip signalled %d times, want 1", n)
	}
}

func TestStreamLost(t *testing.T) {
	tests := []struct {
		name     string
		started  bool
		segments int // one every 30 s
		wantLost time.Duration
	}{
		// Authorized at 0, never started: lost 2 × 30 s later.
		{"never started", false, 0, time.Minute},
		// Started at 1 s: lost 60 s after that.
		{"started, no segment", true, 0, 61 * time.Second},
		// Last segment at 90 s: lost at 150 s.
		{"segments stop", true, 3, 150 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			s := newSession(t, w)
			var grant recording.Grant
			var err error
			s.authorize(0, &grant, &err)
			if tt.started {
				s.signal(time.Second, contract.SignalStarted, nil)
			}
			for i := range tt.segments {
				s.signal(time.Duration(i+1)*30*time.Second, contract.SignalSegment,
					w.segment(s.id, t0.Add(time.Duration(i)*30*time.Second), 30*time.Second))
			}
			s.env.ExecuteWorkflow(workflows.StreamSessionWorkflow, s.input(30*time.Second))
			s.mustComplete(t)

			if d := s.env.Now().Sub(t0); d != tt.wantLost {
				t.Errorf("lost after %s, want %s", d, tt.wantLost)
			}
			row := s.row(t)
			if row.Status != contract.SessionLost || row.EndedAt == nil || !row.EndedAt.Equal(t0.Add(tt.wantLost).Truncate(time.Millisecond)) {
				t.Errorf("session row = %s ended %v, want lost at %s", row.Status, row.EndedAt, t0.Add(tt.wantLost))
			}
			if n := w.countRecordings(t); n != tt.segments {
				t.Errorf("%d recordings, want %d", n, tt.segments)
			}
		})
	}
}

// Stopped ends the session, after recording the segments still queued.
func TestStreamStoppedEnds(t *testing.T) {
	w := newWorld(t)
	s := newSession(t, w)
	var grant recording.Grant
	var err error
	s.authorize(0, &grant, &err)
	s.signal(time.Second, contract.SignalStarted, nil)
	s.signal(30*time.Second, contract.SignalSegment, w.segment(s.id, t0, 30*time.Second))
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalStopped, nil)
		s.env.SignalWorkflow(contract.SignalSegment, w.segment(s.id, t0.Add(30*time.Second), 10*time.Second))
	}, 40*time.Second)
	s.env.ExecuteWorkflow(workflows.StreamSessionWorkflow, s.input(30*time.Second))
	s.mustComplete(t)

	if n := w.countRecordings(t); n != 2 {
		t.Errorf("%d recordings, want 2 (the one queued behind stop too)", n)
	}
	row := s.row(t)
	if row.Status != contract.SessionEnded || row.StartedAt == nil || !row.StartedAt.Equal(t0.Add(time.Second).Truncate(time.Millisecond)) {
		t.Errorf("session row = %+v, want ended, started at 1 s", row)
	}
}

func TestStreamNeverAuthorized(t *testing.T) {
	w := newWorld(t)
	s := newSession(t, w)
	s.env.ExecuteWorkflow(workflows.StreamSessionWorkflow, s.input(30*time.Second))
	s.mustComplete(t)
	if d := s.env.Now().Sub(t0); d != 2*time.Minute {
		t.Errorf("gave up after %s, want 2m", d)
	}
	if _, err := w.st.SessionByID(context.Background(), s.id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session row: %v, want none", err)
	}
}

// After 200 segments a session continues as new, still authorized (a new
// authorize is refused there) and still live.
func TestStreamContinuesAsNew(t *testing.T) {
	w := newWorld(t)
	s := newSession(t, w)
	var grant recording.Grant
	var err error
	s.authorize(0, &grant, &err)
	s.signal(time.Second, contract.SignalStarted, nil)
	for i := range 200 {
		s.signal(time.Duration(i+2)*time.Second, contract.SignalSegment, w.segment(s.id, t0.Add(time.Duration(i)*time.Second), time.Second))
	}
	// Two more queue up behind the 200th: they are recorded before the run
	// continues as new, not lost with it.
	for i := 200; i < 202; i++ {
		s.signal(201*time.Second, contract.SignalSegment, w.segment(s.id, t0.Add(time.Duration(i)*time.Second), time.Second))
	}
	s.env.ExecuteWorkflow(workflows.StreamSessionWorkflow, s.input(time.Second))

	var can *workflow.ContinueAsNewError
	if err := s.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	var next contract.StreamInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if !next.Authorized || next.Status != contract.SessionLive || next.Worker != "nvr-1" || next.Segments != 202 || next.SessionID != s.id.String() {
		t.Errorf("next run input = %+v, want authorized, live, 202 segments", next)
	}

	// The next run refuses a second authorize, and keeps recording.
	env := newEnv(t, w)
	var err2 error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(contract.UpdateAuthorize, "again", &testsuite.TestUpdateCallback{
			OnReject: func(e error) { err2 = e }, OnComplete: func(_ any, e error) { err2 = e },
		}, contract.AuthorizeRequest{Worker: "nvr-2"})
	}, 0)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalSegment, w.segment(s.id, t0.Add(time.Hour), time.Second))
		env.SignalWorkflow(contract.SignalStopped, nil)
	}, 100*time.Millisecond)
	env.SetStartTime(next.LastSeen)
	env.ExecuteWorkflow(workflows.StreamSessionWorkflow, next)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("next run: %v", err)
	}
	if !activities.HasErrorType(err2, workflows.ErrTokenUsed) {
		t.Errorf("authorize in the next run = %v, want token already used", err2)
	}
	if n := w.countRecordings(t); n != 203 {
		t.Errorf("%d recordings, want 203", n)
	}
}

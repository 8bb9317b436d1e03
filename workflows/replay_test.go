package workflows_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/workflows"
)

// The histories under testdata were recorded from real runs on the dev
// server (VMS_RECORD_HISTORY=1 go test -run TestIntegration ./workflows/,
// which never overwrites a file). Today's workflow code must replay every
// one of them: a change to a workflow's command sequence that is not
// behind workflow.GetVersion fails here. Re-record only when adding a
// scenario, never to make this pass.
var recordedHistories = []string{
	// Recorded before the clip's assembly step existed: they replay on its
	// DefaultVersion path.
	"clip-past-range",      // past range, recordings present: finished at once
	"clip-future-segments", // waits, woken by segment signals, finished
	"clip-deadline",        // no stream: polled until end + grace, failed
	"stream-session",       // authorize, started, segments (one re-delivered), stopped
	"snapshot-ready",       // upload URL, complete, verified: ready
	// Recorded with the assembly step (assemble-mp4 version 1).
	"clip-assembled",                 // past hour, 120 recordings: assembled into one MP4, finished
	"clip-future-segments-assembled", // waits, woken by segment signals, assembled, finished
	"clip-no-media",                  // recordings whose objects are gone: NoMedia, failed
	// Recorded with channel supervisors (record-session-signals version 1).
	"channel-supervisor",    // start pass, record, live, session ended, restarted, live, channel deleted
	"stream-session-record", // a recording session: authorized, started (tells the supervisor), stopped
}

func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range recordedHistories {
		if !slices.Contains(files, historyFile(name)) {
			t.Errorf("%s is missing", historyFile(name))
		}
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			if err := replay(file); err != nil {
				t.Errorf("replay %s: %v", file, err)
			}
		})
	}
}

// TestReplayAssembleGuard shows what the GetVersion guard around the clip's
// assembly step is for, by replaying recorded clips against two stand-ins
// for other code: the code before the step (GetVersion answers
// DefaultVersion and records nothing), and the step without its guard
// (GetVersion answers 1 and records nothing, as if the call were not there).
func TestReplayAssembleGuard(t *testing.T) {
	tests := []struct {
		name     string
		history  string
		version  workflow.Version // what the stand-in's GetVersion answers
		replays  bool
		whyError string // in the error when it does not replay
	}{
		// The code before the step replays what it recorded (the test's
		// own sanity check), but not a clip that was assembled: rolling
		// back the deploy would break clips recorded by the new code.
		{"pre-change history, step removed", "clip-past-range", workflow.DefaultVersion, true, ""},
		{"post-change history, step removed", "clip-assembled", workflow.DefaultVersion, false, "lookup failed for scheduledEventID"},
		// Without the guard, every clip recorded before the step existed
		// fails to replay: the history has SetClipStatus where the code now
		// schedules AssembleClip. This is what the guard prevents.
		{"pre-change history, step unguarded", "clip-past-range", 1, false, "replay command is ScheduleActivityTask: (ActivityId:11, ActivityType:(Name:AssembleClip)"},
		{"pre-change waiting history, step unguarded", "clip-future-segments", 1, false, "ActivityType:(Name:AssembleClip)"},
		// A history recorded with the guard replays without it: the SDK
		// skips version markers (and their search attribute upsert) when it
		// matches commands to events. So the guard can only be dropped
		// once no pre-change run can replay any more, never before.
		{"post-change history, step unguarded", "clip-assembled", 1, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := replay(historyFile(tt.history), &standIn{version: tt.version})
			switch {
			case tt.replays && err != nil:
				t.Errorf("replay %s: %v, want it to replay", tt.history, err)
			case !tt.replays && err == nil:
				t.Errorf("replay %s succeeded, want a nondeterminism error (%s)", tt.history, tt.whyError)
			case !tt.replays && (!strings.Contains(err.Error(), "TMPRL1100") || !strings.Contains(err.Error(), tt.whyError)):
				t.Errorf("replay %s: %v, want a nondeterminism error (TMPRL1100) with %q", tt.history, err, tt.whyError)
			}
		})
	}
}

func historyFile(name string) string { return filepath.Join("testdata", name+".json") }

// replay replays one recorded history against today's workflows, with the
// given interceptors.
func replay(file string, interceptors ...interceptor.WorkerInterceptor) error {
	replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{Interceptors: interceptors})
	if err != nil {
		return err
	}
	workflows.RegisterWorkflows(replayer)
	return replayer.ReplayWorkflowHistoryFromJSONFile(quietLogger(), file)
}

// standIn makes GetVersion(workflows.AssembleVersion) answer version
// without recording a marker: the clip workflow then behaves as code that
// never called it.
type standIn struct {
	interceptor.WorkerInterceptorBase
	version workflow.Version
}

func (s *standIn) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	in := &standInInbound{version: s.version}
	in.Next = next
	return in
}

type standInInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	version workflow.Version
}

func (in *standInInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	out := &standInOutbound{version: in.version}
	out.Next = outbound
	return in.Next.Init(out)
}

type standInOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	version workflow.Version
}

func (out *standInOutbound) GetVersion(ctx workflow.Context, changeID string, minSupported, maxSupported workflow.Version) workflow.Version {
	if changeID == workflows.AssembleVersion {
		return out.version
	}
	return out.Next.GetVersion(ctx, changeID, minSupported, maxSupported)
}

package workflows_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/workflows"
)

// The histories under testdata were recorded from real runs on the dev
// server (VMS_RECORD_HISTORY=1 go test -run TestIntegration ./workflows/).
// Today's workflow code must replay every one of them: a change to a
// workflow's command sequence that is not behind workflow.GetVersion fails
// here. Re-record only when adding a scenario, never to make this pass.
var recordedHistories = []string{
	"clip-past-range",      // past range, recordings present: finished at once
	"clip-future-segments", // waits, woken by segment signals, finished
	"clip-deadline",        // no stream: polled until end + grace, failed
	"stream-session",       // authorize, started, segments (one re-delivered), stopped
	"snapshot-ready",       // upload URL, complete, verified: ready
}

func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range recordedHistories {
		if !slices.Contains(files, filepath.Join("testdata", name+".json")) {
			t.Errorf("testdata/%s.json is missing", name)
		}
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			replayer := worker.NewWorkflowReplayer()
			workflows.RegisterWorkflows(replayer)
			if err := replayer.ReplayWorkflowHistoryFromJSONFile(quietLogger(), file); err != nil {
				t.Errorf("replay %s: %v", file, err)
			}
		})
	}
}

package workflows_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/testsuite"

	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

func TestSnapshotClientUpload(t *testing.T) {
	tests := []struct {
		name       string
		upload     []byte // nil: nothing uploaded
		complete   bool
		maxBytes   int64
		wantStatus string
		wantType   string
		wantError  string
		wantAfter  time.Duration // workflow time to the outcome
	}{
		{"jpeg completed", jpeg, true, 0, contract.SnapshotReady, "image/jpeg", "", 5 * time.Second},
		{"png completed", png, true, 0, contract.SnapshotReady, "image/png", "", 5 * time.Second},
		{"not an image", []byte("<html>hello</html>"), true, 0, contract.SnapshotFailed, "", "not a JPEG or PNG", 5 * time.Second},
		{"too large", jpeg, true, 16, contract.SnapshotFailed, "", "more than the 16 allowed", 5 * time.Second},
		{"completed without upload", nil, true, 0, contract.SnapshotFailed, "", "nothing was uploaded", 5 * time.Second},
		// Checked once more when the URL expires (plus 10 s slack).
		{"uploaded, never completed", jpeg, false, 0, contract.SnapshotReady, "image/jpeg", "", 70 * time.Second},
		{"no upload", nil, false, 0, contract.SnapshotExpired, "", "no upload before the URL expired", 70 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			objects := w.objects
			w.acts.MaxSnapshotBytes = tt.maxBytes
			sn := w.newSnapshot(t, contract.SnapshotClient)
			env := newEnv(t, w)
			var url string
			var urlErr error
			env.RegisterDelayedCallback(func() {
				env.UpdateWorkflow(contract.UpdateUploadURL, uuid.NewString(), &testsuite.TestUpdateCallback{
					OnReject:   func(err error) { urlErr = err },
					OnComplete: func(v any, err error) { url, _ = v.(string); urlErr = err },
				})
			}, 0)
			env.RegisterDelayedCallback(func() {
				if tt.upload != nil {
					put(t, objects, sn.Key, tt.upload)
				}
				if tt.complete {
					env.SignalWorkflow(contract.SignalComplete, nil)
				}
			}, 5*time.Second)
			env.ExecuteWorkflow(workflows.SnapshotWorkflow, contract.SnapshotInput{
				SnapshotID: sn.ID.String(), ChannelID: w.ch.ID.String(), Source: contract.SnapshotClient,
				Key: sn.Key, URLExpiry: time.Minute,
			})
			if err := env.GetWorkflowError(); err != nil {
				t.Fatalf("workflow error: %v", err)
			}
			if urlErr != nil || !strings.Contains(url, sn.Key) || !strings.Contains(url, "X-Amz-Expires=60") {
				t.Errorf("upload URL = %q, %v; want a 60 s presigned URL for %s", url, urlErr, sn.Key)
			}
			if d := env.Now().Sub(t0); d != tt.wantAfter {
				t.Errorf("outcome after %s, want %s", d, tt.wantAfter)
			}
			got := w.snapshot(t, sn.ID)
			if got.Status != tt.wantStatus || got.ContentType != tt.wantType || !strings.Contains(got.Error, tt.wantError) {
				t.Errorf("snapshot = %s %q error %q, want %s %q error containing %q",
					got.Status, got.ContentType, got.Error, tt.wantStatus, tt.wantType, tt.wantError)
			}
			if tt.wantStatus == contract.SnapshotReady && got.Size != int64(len(tt.upload)) {
				t.Errorf("snapshot size = %d, want %d", got.Size, len(tt.upload))
			}
		})
	}
}

// An agent snapshot fails for now (the agent path comes later) and takes no
// client upload.
func TestSnapshotAgentSource(t *testing.T) {
	w := newWorld(t)
	sn := w.newSnapshot(t, contract.SnapshotAgent)
	env := newEnv(t, w)
	var urlErr error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(contract.UpdateUploadURL, "u", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { urlErr = err }, OnComplete: func(_ any, err error) { urlErr = err },
		})
	}, 0)
	env.ExecuteWorkflow(workflows.SnapshotWorkflow, contract.SnapshotInput{
		SnapshotID: sn.ID.String(), ChannelID: w.ch.ID.String(), Source: contract.SnapshotAgent, Key: sn.Key, URLExpiry: time.Minute,
	})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if urlErr == nil {
		t.Error("upload URL for an agent snapshot was granted")
	}
	if got := w.snapshot(t, sn.ID); got.Status != contract.SnapshotFailed || got.Error != "no agent capture yet" {
		t.Errorf("snapshot = %s %q, want failed: no agent capture yet", got.Status, got.Error)
	}
}

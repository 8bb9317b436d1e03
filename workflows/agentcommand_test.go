package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

// TestAgentCommandWorkflow: the agent's ack is the result, ok or not; an
// activity failure keeps its type so callers can tell offline from silent.
func TestAgentCommandWorkflow(t *testing.T) {
	cmd := control.Command{V: control.Version, ID: "cmd-1", Type: control.TypePTZ, CameraID: "cam", Action: control.ActionStop}
	tests := []struct {
		name     string
		ack      control.Ack
		err      error
		wantAck  control.Ack
		wantType string
	}{
		{"acked", control.Done("cmd-1"), nil, control.Done("cmd-1"), ""},
		{"camera refused", control.Failed("cmd-1", errors.New("no ONVIF")), nil, control.Failed("cmd-1", errors.New("no ONVIF")), ""},
		{"disconnected", control.Ack{}, temporal.NewNonRetryableApplicationError("gone", control.ErrOffline, nil), control.Ack{}, control.ErrOffline},
		{"bad command", control.Ack{}, temporal.NewNonRetryableApplicationError("not yours", control.ErrBadCommand, nil), control.Ack{}, control.ErrBadCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestWorkflowEnvironment()
			var got control.Command
			var info activity.Info
			env.RegisterActivityWithOptions(func(ctx context.Context, c control.Command) (control.Ack, error) {
				got, info = c, activity.GetInfo(ctx)
				return tt.ack, tt.err
			}, activity.RegisterOptions{Name: control.ActivityName})
			env.RegisterWorkflow(workflows.AgentCommandWorkflow)
			env.ExecuteWorkflow(workflows.AgentCommandWorkflow, contract.AgentCommandInput{AgentID: "agent-7", Command: cmd, AckTimeout: 3 * time.Second})

			if got.ID != cmd.ID || got.Action != cmd.Action || got.Camera != nil {
				t.Fatalf("the activity got %+v, want the command as given", got)
			}
			if info.TaskQueue != control.TaskQueue("agent-7") || info.Attempt != 1 {
				t.Fatalf("activity on %q attempt %d, want the agent's queue, once", info.TaskQueue, info.Attempt)
			}
			err := env.GetWorkflowError()
			if tt.wantType == "" {
				var ack control.Ack
				if err != nil || env.GetWorkflowResult(&ack) != nil || ack != tt.wantAck {
					t.Fatalf("result %+v, %v; want %+v", ack, err, tt.wantAck)
				}
				return
			}
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != tt.wantType {
				t.Fatalf("error %v, want an application error of type %s", err, tt.wantType)
			}
		})
	}
}

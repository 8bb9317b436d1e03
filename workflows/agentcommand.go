package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/workflows/contract"
)

// AgentCommandWorkflow delivers one command to an agent and returns the
// agent's ack. It exists so that a caller outside any workflow (the PTZ
// handler, on whichever API replica the request reached) can run the
// AgentCommand activity on the agent's task queue, which the replica
// holding the agent's connection serves.
//
// It fails with an application error of type control.ErrOffline when no
// replica holds the agent's connection, control.ErrTimeout when the agent
// did not acknowledge in time. An ack with ok:false is a result.
func AgentCommandWorkflow(ctx workflow.Context, in contract.AgentCommandInput) (control.Ack, error) {
	return sendAgentCommand(ctx, in.AgentID, in.Command, in.OfflineAfter, in.AckTimeout)
}

// sendAgentCommand runs the AgentCommand activity on the agent's task queue,
// once: a command is never repeated behind the caller's back (a PTZ move
// sent twice moves twice), and the caller hears at once why it failed.
func sendAgentCommand(ctx workflow.Context, agentID string, cmd control.Command, offlineAfter, ackTimeout time.Duration) (control.Ack, error) {
	if offlineAfter <= 0 {
		offlineAfter = control.OfflineAfter
	}
	if ackTimeout <= 0 {
		ackTimeout = control.AckTimeout
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              control.TaskQueue(agentID),
		ScheduleToStartTimeout: offlineAfter,
		StartToCloseTimeout:    ackTimeout,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var ack control.Ack
	err := workflow.ExecuteActivity(ctx, control.ActivityName, cmd).Get(ctx, &ack)
	var timeout *temporal.TimeoutError
	switch {
	case err == nil:
		return ack, nil
	case errors.As(err, &timeout) && timeout.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START:
		return ack, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("agent offline: no connection to it for %s", offlineAfter), control.ErrOffline, nil)
	case errors.As(err, &timeout):
		return ack, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("agent did not acknowledge within %s", ackTimeout), control.ErrTimeout, nil)
	default:
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return ack, temporal.NewNonRetryableApplicationError(appErr.Message(), appErr.Type(), nil)
		}
		return ack, err
	}
}

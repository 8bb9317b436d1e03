package workflows

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/opennvr/vms/workflows/contract"
)

// StartChannelSupervisor makes sure the channel's supervisor runs: it
// starts ChannelWorkflow, or leaves the running one alone. The API calls it
// when a channel is created; the workflow worker calls it for every channel
// at start, so channels of an older version, or whose supervisor was
// terminated by hand, get one.
func StartChannelSupervisor(ctx context.Context, c client.Client, taskQueue, channelID string) error {
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       contract.ChannelWorkflowID(channelID),
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.ChannelIDKey.ValueSet(channelID), contract.RecordingStateKey.ValueSet(contract.StateStarting)),
	}, ChannelWorkflow, contract.ChannelInput{ChannelID: channelID})
	if err != nil {
		return fmt.Errorf("start supervisor of channel %s: %w", channelID, err)
	}
	return nil
}

// SignalChannel tells a channel's supervisor something happened; a channel
// without a running supervisor (deleted, or never started) is no error.
func SignalChannel(ctx context.Context, c client.Client, channelID, signal string, arg any) error {
	err := c.SignalWorkflow(ctx, contract.ChannelWorkflowID(channelID), "", signal, arg)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil
	}
	return err
}

package workflows

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/google/uuid"
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

// ChannelLister pages through every channel's id; *store.Store is one.
type ChannelLister interface {
	ChannelIDs(ctx context.Context, after uuid.UUID, limit int) ([]uuid.UUID, error)
}

// StartSupervisors starts the supervisor of every channel that lacks one,
// a few at a time (a running one is left alone, so this is cheap to repeat).
// The workflow worker runs it at start: channels created before supervisors
// existed, or whose supervisor was terminated, record again.
func StartSupervisors(ctx context.Context, c client.Client, taskQueue string, channels ChannelLister) (int, error) {
	const page, parallel = 500, 16
	n := 0
	for after := uuid.Nil; ; {
		ids, err := channels.ChannelIDs(ctx, after, page)
		if err != nil || len(ids) == 0 {
			return n, err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(parallel)
		for _, id := range ids {
			g.Go(func() error { return StartChannelSupervisor(gctx, c, taskQueue, id.String()) })
		}
		if err := g.Wait(); err != nil {
			return n, err
		}
		n += len(ids)
		after = ids[len(ids)-1]
	}
}

// SignalChannels sends the same signal to the supervisors of many channels,
// a few at a time (an agent with thousands of cameras may reconnect, an NVR
// with thousands of channels may be drained). It goes on past a failure
// and returns the first.
func SignalChannels(ctx context.Context, c client.Client, channelIDs []uuid.UUID, signal string) error {
	var g errgroup.Group
	g.SetLimit(16)
	for _, id := range channelIDs {
		g.Go(func() error { return SignalChannel(ctx, c, id.String(), signal, nil) })
	}
	return g.Wait()
}

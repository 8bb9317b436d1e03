package workflows

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/workflows/contract"
)

const (
	retentionChannelsPerPass = 100
	retentionBatch           = 500
	// retentionPassesPerRun bounds one run's history.
	retentionPassesPerRun = 200
)

// RetentionWorkflow deletes expired recordings (objects and rows) of every
// channel, a page of channels per activity call, following each channel's
// retention days. A Temporal Schedule runs it (EnsureRetentionSchedule), so
// each sweep is visible in the Temporal UI.
func RetentionWorkflow(ctx workflow.Context, in contract.RetentionInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy:         retryForever(),
	})
	now := workflow.Now(ctx)
	for pass := 0; ; pass++ {
		if pass >= retentionPassesPerRun {
			return workflow.NewContinueAsNewError(ctx, RetentionWorkflow, in)
		}
		var res activities.RetentionResult
		err := workflow.ExecuteActivity(ctx, acts.ExpireRecordings, activities.RetentionInput{
			Now: now, AfterChannel: in.AfterChannel, Channels: retentionChannelsPerPass, Batch: retentionBatch,
		}).Get(ctx, &res)
		if err != nil {
			return err
		}
		in.AfterChannel, in.Deleted = res.NextChannel, in.Deleted+res.Deleted
		if res.Done {
			workflow.GetLogger(ctx).Info("retention sweep done", "deleted", in.Deleted)
			return nil
		}
	}
}

// PurgeChannelWorkflow deletes the objects of a deleted channel.
func PurgeChannelWorkflow(ctx workflow.Context, channelID string) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		RetryPolicy:         retryForever(),
	})
	return workflow.ExecuteActivity(ctx, acts.PurgeChannelObjects, channelID).Get(ctx, nil)
}

// EnsureRetentionSchedule creates the hourly retention schedule unless it
// exists (every workflow worker calls it at start; one wins).
func EnsureRetentionSchedule(ctx context.Context, c client.Client) error {
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   contract.RetentionScheduleID,
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: contract.RetentionInterval}}},
		Action: &client.ScheduleWorkflowAction{
			ID:        "retention",
			Workflow:  RetentionWorkflow,
			Args:      []any{contract.RetentionInput{}},
			TaskQueue: contract.TaskQueue,
		},
		// The default overlap policy (skip) keeps one sweep at a time.
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && (errors.As(err, &exists) || errors.Is(err, temporal.ErrScheduleAlreadyRunning)) {
		return nil
	}
	return err
}

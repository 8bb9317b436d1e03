// Package workflows holds the durable flows of the NVR: ClipWorkflow,
// StreamSessionWorkflow, SnapshotWorkflow, RetentionWorkflow,
// PurgeChannelWorkflow and AgentCommandWorkflow. Their ids, task queue,
// signals, queries, updates, search attributes, statuses and inputs are
// named once, in workflows/contract.
package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/activities"
)

// Register registers every workflow and activity on a worker (or a test
// environment).
func Register(w worker.Registry, acts *activities.Activities) {
	RegisterWorkflows(w)
	w.RegisterActivity(acts)
}

// RegisterWorkflows registers the workflows only: what a replayer needs.
func RegisterWorkflows(w worker.WorkflowRegistry) {
	w.RegisterWorkflow(ChannelWorkflow)
	w.RegisterWorkflow(ClipWorkflow)
	w.RegisterWorkflow(StreamSessionWorkflow)
	w.RegisterWorkflow(SnapshotWorkflow)
	w.RegisterWorkflow(AgentCommandWorkflow)
	w.RegisterWorkflow(RetentionWorkflow)
	w.RegisterWorkflow(PurgeChannelWorkflow)
}

// ErrTokenUsed is the type of the error a second authorize update gets.
const ErrTokenUsed = "TokenUsed"

// acts names the activities for workflow.ExecuteActivity: only its method
// values are used, never its (nil) dependencies.
var acts *activities.Activities

// retryForever retries an activity until it succeeds or fails with a
// non-retryable error: the workflows have deadlines of their own.
func retryForever() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    30 * time.Second,
	}
}

// withActivities sets the options of a workflow's ordinary activity calls.
func withActivities(ctx workflow.Context, startToClose time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		RetryPolicy:         retryForever(),
	})
}

// withAnswerActivities sets the options of activities run while a caller
// waits for an update's answer: they give up rather than hang the caller.
func withAnswerActivities(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            retryForever(),
	})
}

// keyword is one keyword search attribute value.
type keyword struct {
	key   temporal.SearchAttributeKeyKeyword
	value string
}

// upsertKeywords sets the search attributes that do not already hold the
// given values (the caller may have set them at start, and continue-as-new
// carries them over), so an unchanged value costs no history event.
func upsertKeywords(ctx workflow.Context, kvs ...keyword) error {
	current := workflow.GetTypedSearchAttributes(ctx)
	var updates []temporal.SearchAttributeUpdate
	for _, kv := range kvs {
		if v, ok := current.GetKeyword(kv.key); ok && v == kv.value {
			continue
		}
		updates = append(updates, kv.key.ValueSet(kv.value))
	}
	if len(updates) == 0 {
		return nil
	}
	return workflow.UpsertTypedSearchAttributes(ctx, updates...)
}

// allHandlersFinished waits until no update handler is running, so a
// workflow never completes or continues as new under a caller's feet.
func allHandlersFinished(ctx workflow.Context) error {
	return workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

// applicationMessage is the message of the application error inside err
// (an activity error wraps it), for answering a caller without the wrapping.
func applicationMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

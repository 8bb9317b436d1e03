package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/reconcile"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

func workflowWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "workflow-worker",
		Short: "Run the Temporal worker: every workflow (channel supervisors, clips, stream sessions, snapshots, retention, agent commands) and activity",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cp, err := openControlPlane(ctx)
			if err != nil {
				return err
			}
			defer cp.close()
			acts, stop, err := startWorkflowWorker(ctx, cp.tc, cp.st, cp.objects)
			if err != nil {
				return err
			}
			defer stop()
			stopReconcile, err := runReconciler(ctx, cp, acts)
			if err != nil {
				return err
			}
			<-ctx.Done()
			stopReconcile()
			return nil
		},
	}
}

// startWorkflowWorker runs the Temporal worker with every workflow and
// activity registered, makes sure the retention schedule exists, and starts
// (in the background) the supervisor of every channel that lacks one. stop
// stops the worker once that pass has ended.
func startWorkflowWorker(ctx context.Context, tc client.Client, st *store.Store, objects *objectstore.Client) (acts *activities.Activities, stop func(), err error) {
	acts = &activities.Activities{Store: st, Objects: objects, Temporal: tc}
	w := worker.New(tc, contract.TaskQueue, worker.Options{})
	workflows.Register(w, acts)
	if err := w.Start(); err != nil {
		return nil, nil, fmt.Errorf("workflow worker: %w", err)
	}
	if err := workflows.EnsureRetentionSchedule(ctx, tc); err != nil {
		w.Stop()
		return nil, nil, fmt.Errorf("retention schedule: %w", err)
	}
	passCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := workflows.StartSupervisors(passCtx, tc, contract.TaskQueue, st)
		if err != nil && passCtx.Err() == nil {
			slog.Error("starting channel supervisors", "err", err)
			return
		}
		slog.Info("channel supervisors running", "channels", n)
	}()
	return acts, func() { cancel(); <-done; w.Stop() }, nil
}

// runReconciler records segments whose worker notification was lost, from
// the bucket's S3 ObjectCreated events: read from the configured SQS queue
// (AWS), or posted to the configured webhook address (MinIO and other S3
// servers that post events). Neither set: nothing runs. The returned function waits for it to stop once ctx
// ends. Give an SQS queue a delivery delay (e.g. 60 s) so the media worker's
// own notification normally comes first and an event costs one lookup.
func runReconciler(ctx context.Context, cp *controlPlane, acts *activities.Activities) (wait func(), err error) {
	rec := &reconcile.Reconciler{Store: cp.st, Objects: cp.objects, Recorder: acts, Bucket: cp.objects.Bucket(), Workers: 4}
	var src reconcile.Source
	switch {
	case cp.cfg.SQSQueueURL != "":
		sqsCfg := reconcile.SQSConfig{QueueURL: cp.cfg.SQSQueueURL, Region: cp.cfg.SQSRegion, Endpoint: cp.cfg.SQSEndpoint}
		if src, err = reconcile.NewSQSSource(ctx, sqsCfg); err != nil {
			return nil, fmt.Errorf("S3 event queue (VMS_SQS_*): %w", err)
		}
		slog.Info("reconciling S3 events", "queue", sqsCfg.QueueURL)
	case cp.cfg.S3WebhookAddr != "":
		hook := reconcile.NewWebhookSource(0, slog.Default())
		url, err := hook.Listen(cp.cfg.S3WebhookAddr)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { hook.Close() })
		// Webhook events are not redelivered: wait so the worker's own
		// notification normally wins and an event costs one lookup.
		rec.Grace = reconcile.DefaultGrace
		src = hook
		slog.Info("reconciling S3 events", "webhook", url)
	default:
		return func() {}, nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := rec.Run(ctx, src); err != nil {
			slog.Error("S3 event reconciler", "err", err)
		}
	}()
	return func() { <-done }, nil
}

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/reconcile"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
	"github.com/opennvr/vms/workflows/devserver"
)

// dialTemporal connects to TEMPORAL_ADDRESS, with mTLS when a client
// certificate is configured.
func dialTemporal(ctx context.Context, cfg config.Config) (client.Client, error) {
	opts := client.Options{
		HostPort:  cfg.TemporalAddress,
		Namespace: cfg.TemporalNamespace,
		Logger:    tlog.NewStructuredLogger(slog.Default().With("component", "temporal")),
	}
	if cfg.TemporalTLSCert != "" || cfg.TemporalTLSCA != "" {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TemporalTLSCert != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TemporalTLSCert, cfg.TemporalTLSKey)
			if err != nil {
				return nil, fmt.Errorf("temporal client certificate: %w", err)
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
		if cfg.TemporalTLSCA != "" {
			pem, err := os.ReadFile(cfg.TemporalTLSCA)
			if err != nil {
				return nil, fmt.Errorf("temporal CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("temporal CA: no certificate found")
			}
			tlsCfg.RootCAs = pool
		}
		opts.ConnectionOptions.TLS = tlsCfg
	}
	return client.DialContext(ctx, opts)
}

// temporalBinary finds the dev server binary the Makefile builds, unless
// configured names one.
func temporalBinary(configured string) (string, error) {
	candidates := []string{configured, filepath.Join("bin", "temporal")}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "temporal"))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return filepath.Abs(c)
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", errors.New("no temporal binary: run `make bin/temporal` (or set VMS_TEMPORAL_BIN or TEMPORAL_ADDRESS)")
}

// startDevTemporal starts the real Temporal dev server (SQLite in the data
// folder, Web UI on :8233) with the search attributes the workflows use.
func startDevTemporal(ctx context.Context, cfg config.Config) (*testsuite.DevServer, error) {
	bin, err := temporalBinary(cfg.TemporalBin)
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(cfg.DataDir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	attrs := make([]temporal.SearchAttributeUpdate, 0, len(contract.SearchAttributes))
	for _, name := range contract.SearchAttributes {
		attrs = append(attrs, temporal.NewSearchAttributeKeyKeyword(name).ValueSet(""))
	}
	return testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin,
		ClientOptions: &client.Options{
			HostPort:  "127.0.0.1:7233",
			Namespace: "default",
			Logger:    tlog.NewStructuredLogger(slog.Default().With("component", "temporal")),
		},
		DBFilename:       filepath.Join(cfg.DataDir, "temporal.db"),
		EnableUI:         true,
		UIPort:           "8233",
		LogLevel:         "warn",
		SearchAttributes: temporal.NewSearchAttributes(attrs...),
		// The same tuning the tests use: without it a one-shard dev server
		// delays tasks by ~45 ms and some by 2 s (see package devserver).
		ExtraArgs: devserver.Args,
		Stdout:    logFile,
		Stderr:    logFile,
	})
}

// newWorkflowWorker builds the Temporal worker with every workflow and
// activity registered.
func newWorkflowWorker(tc client.Client, st *store.Store, objects *objectstore.Client) (worker.Worker, *activities.Activities) {
	acts := &activities.Activities{Store: st, Objects: objects, Temporal: tc}
	w := worker.New(tc, contract.TaskQueue, worker.Options{})
	workflows.Register(w, acts)
	return w, acts
}

func workflowWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "workflow-worker",
		Short: "Run the Temporal worker: clip, stream-session and snapshot workflows and their activities",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cp, err := openControlPlane(ctx)
			if err != nil {
				return err
			}
			defer cp.close()
			w, acts := newWorkflowWorker(cp.tc, cp.st, cp.objects)
			if err := w.Start(); err != nil {
				return err
			}
			if err := workflows.EnsureRetentionSchedule(ctx, cp.tc); err != nil {
				return fmt.Errorf("retention schedule: %w", err)
			}
			stopReconcile, err := runReconciler(ctx, cp, acts)
			if err != nil {
				return err
			}
			<-ctx.Done()
			stopReconcile()
			w.Stop()
			return nil
		},
	}
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

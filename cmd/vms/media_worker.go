package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/recording"
)

func mediaWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "media-worker",
		Short: "Run an NVR media worker: WebSocket ingest from agents, fMP4 segments, S3 upload",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load()
			if err != nil {
				return err
			}
			objects, err := openObjects(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return runMediaWorker(cmd.Context(), cfg, objects)
		},
	}
}

// runMediaWorker registers this media worker as an NVR instance, then
// serves the ingest WebSocket, drains the spool and keeps the registration
// fresh until ctx ends.
func runMediaWorker(ctx context.Context, cfg config.Config, objects *objectstore.Client) error {
	if cfg.WorkerKey == "" {
		return errors.New("VMS_WORKER_KEY must be set")
	}
	public := cfg.MediaPublicURL
	if public == "" {
		public = mediaURL(cfg.MediaAddr)
	}
	control := &mediaworker.APIClient{API: &apiclient.Client{BaseURL: cfg.APIURL, Key: cfg.WorkerKey}, Worker: cfg.NVRName}
	for attempt := 0; ; attempt++ {
		err := control.Register(ctx, cfg.NVRName, public, cfg.NVRCapacity)
		if err == nil {
			break
		}
		if apiclient.IsPermanent(err) {
			return fmt.Errorf("register NVR instance: %w", err)
		}
		slog.Warn("media worker: API not reachable yet, retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(attempt+1)*time.Second, 10*time.Second)):
		}
	}
	spool := &mediaworker.Spool{
		Dir:      filepath.Join(cfg.DataDir, "spool", "ready"),
		WorkDir:  filepath.Join(cfg.DataDir, "spool", "writing"),
		Uploader: mediaworker.ObjectUploader{Objects: objects},
		Control:  control,
	}
	srv := &mediaworker.Server{Control: control, Spool: spool, SegmentLength: cfg.SegmentLength}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ignoreCanceled(spool.Run(ctx)) })
	g.Go(func() error {
		return ignoreCanceled(control.KeepRegistered(ctx, cfg.NVRName, public, cfg.NVRCapacity, recording.NVRHeartbeat))
	})
	g.Go(func() error {
		err := serveHTTP(ctx, "media-worker", cfg.MediaAddr, srv.Handler(), nil)
		// Streams outlive the HTTP server (their connections are hijacked):
		// end them so each flushes its last segment to the spool.
		srv.Close()
		return err
	})
	slog.Info("media worker registered", "nvr", cfg.NVRName, "url", public)
	return g.Wait()
}

// mediaURL is the media worker's public WebSocket URL for a listen address.
func mediaURL(addr string) string { return "ws://" + hostPort(addr) + "/v1/ingest" }

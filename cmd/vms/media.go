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

	"github.com/opennvr/vms/agent"
	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/objectstore"
)

// runMediaWorker registers this media worker as an NVR instance, then
// serves the ingest WebSocket and drains the spool until ctx ends.
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
		Uploader: mediaworker.ObjectUploader{Objects: objects},
		Control:  control,
	}
	srv := &mediaworker.Server{
		Control: control, Spool: spool, SegmentLength: cfg.SegmentLength,
		WorkDir: filepath.Join(cfg.DataDir, "spool", "writing"),
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ignoreCanceled(spool.Run(ctx)) })
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

// newAgent builds the local agent's stream manager against the API.
func newAgent(cfg config.Config) *agent.Manager {
	cp := &agent.ControlPlane{API: agentAPI(cfg)}
	return agent.NewManager(agent.ManagerConfig{Resolver: cp, Tokens: cp})
}

// newAgentControl builds the local agent's control channel to the API
// (PTZ and snapshot commands; record commands run their streams on m).
func newAgentControl(cfg config.Config, m *agent.Manager) (*agent.ControlClient, error) {
	u, err := agent.ControlURL(cfg.APIURL)
	if err != nil {
		return nil, fmt.Errorf("VMS_API_URL: %w", err)
	}
	return &agent.ControlClient{URL: u, Key: cfg.AgentKey, Commands: &agent.Executor{Streams: m}}, nil
}

func agentCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "agent",
		Short: "Run the local agent: pulls cameras on the LAN and pushes them to media workers",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load()
			if err != nil {
				return err
			}
			if cfg.AgentKey == "" {
				return errors.New("VMS_AGENT_KEY must be set (vms account create prints one)")
			}
			m := newAgent(cfg)
			defer m.Close()
			agentControl, err := newAgentControl(cfg, m)
			if err != nil {
				return err
			}
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return ignoreCanceled(agentControl.Run(ctx)) })
			g.Go(func() error { return serveHTTP(ctx, "agent", cfg.AgentAddr, agent.NewHandler(m, slog.Default()), nil) })
			return g.Wait()
		},
	}
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func agentAPI(cfg config.Config) *apiclient.Client {
	return &apiclient.Client{BaseURL: cfg.APIURL, Key: cfg.AgentKey}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/opennvr/vms/agent"
	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/reconcile"
	"github.com/opennvr/vms/store"
)

// devNVR is the NVR instance of the in-process media worker.
const devNVR = "local"

func devCmd() *cobra.Command {
	var demo bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system in one process on embedded defaults (SQLite, embedded S3, Temporal dev server)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load()
			if err != nil {
				return err
			}
			return runDev(cmd.Context(), cfg, demo)
		},
	}
	cmd.Flags().BoolVar(&demo, "demo", false, "also run a built-in demo camera, recorded from the start")
	return cmd
}

func runDev(ctx context.Context, cfg config.Config, demo bool) error {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return err
	}
	release, err := claimDataDir(ctx, cfg)
	if err != nil {
		return err
	}
	defer release()
	secrets, err := loadDevSecrets(cfg.DataDir)
	if err != nil {
		return err
	}
	if cfg.DevAPIKey == "" {
		cfg.DevAPIKey = secrets.APIKey
	}
	if cfg.TokenSecret == "" {
		cfg.TokenSecret = secrets.TokenSecret
	}
	if cfg.WorkerKey == "" {
		cfg.WorkerKey = secrets.WorkerKey
	}
	if cfg.AgentKey == "" {
		cfg.AgentKey = secrets.AgentKey
	}
	// Everything runs in this process: the worker and agent call this API,
	// and the worker registers as the seeded NVR instance.
	cfg.APIURL = "http://" + hostPort(cfg.HTTPAddr)
	cfg.NVRName = devNVR

	// The embedded S3 server posts its bucket events to a loopback webhook,
	// so segments whose notification was lost are recorded all the same. The
	// webhook must listen before the server starts: it sends a test event.
	var s3Events *reconcile.WebhookSource
	if cfg.S3Endpoint == "" {
		s3Events = reconcile.NewWebhookSource(0, slog.Default())
		hookURL, err := s3Events.Listen("127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("S3 event webhook: %w", err)
		}
		defer s3Events.Close()
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		s3, err := objectstore.StartEmbedded(ctx, []string{exe, "objectstore"}, objectstore.ServerConfig{
			Dir: filepath.Join(cfg.DataDir, "s3"), Addr: cfg.DevS3Addr, Region: cfg.S3Region,
			AccessKey: secrets.S3AccessKey, SecretKey: secrets.S3SecretKey,
			EventWebhookURL: hookURL,
		})
		if err != nil {
			return fmt.Errorf("embedded S3: %w", err)
		}
		forget, err := recordChild(cfg, s3PIDFile, s3.Pid())
		defer func() { s3.Stop(); forget() }()
		if err != nil {
			return err
		}
		cfg.S3Endpoint, cfg.S3PathStyle = s3.Endpoint(), true
		cfg.S3AccessKey, cfg.S3SecretKey = secrets.S3AccessKey, secrets.S3SecretKey
	}

	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	objects, err := openObjects(ctx, cfg)
	if err != nil {
		return err
	}
	if err := seedDev(ctx, st, cfg, secrets); err != nil {
		return fmt.Errorf("seed dev account: %w", err)
	}

	var tc client.Client
	temporalUI := "http://" + loopback(cfg.DevTemporalUIPort)
	if cfg.TemporalAddress == "" {
		ts, err := startDevTemporal(ctx, cfg)
		if err != nil {
			return fmt.Errorf("temporal dev server: %w", err)
		}
		forget, err := recordChild(cfg, temporalPIDFile, ts.Pid())
		// Signal the dev server the moment shutdown starts, not after the
		// rest has stopped: a supervisor that kills us soon after must not
		// leave it running with its port taken.
		stopTemporal := sync.OnceFunc(func() {
			if err := ts.Stop(); err != nil {
				slog.Warn("temporal dev server stopped uncleanly", "err", err)
			}
			forget()
		})
		go func() { <-ctx.Done(); stopTemporal() }()
		defer stopTemporal()
		if err != nil {
			return err
		}
		tc = ts.Client
		cfg.TemporalAddress = ts.HostPort
	} else {
		if tc, err = dialTemporal(ctx, cfg); err != nil {
			return err
		}
		defer tc.Close()
		temporalUI = "(the cluster's own UI)"
	}
	acts, stopWorker, err := startWorkflowWorker(ctx, tc, st, objects)
	if err != nil {
		return err
	}
	defer stopWorker()
	srv, err := newAPI(cfg, st, objects, tc, acts)
	if err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	if s3Events != nil {
		rec := &reconcile.Reconciler{Store: st, Objects: objects, Recorder: acts,
			Bucket: objects.Bucket(), Grace: reconcile.DefaultGrace}
		g.Go(func() error { return rec.Run(ctx, s3Events) })
	}
	apiReady := make(chan struct{})
	g.Go(func() error {
		err := serveHTTP(ctx, "api", cfg.HTTPAddr, srv.Handler(), apiReady)
		srv.Close() // agent control connections outlive the HTTP server
		return err
	})
	select {
	case <-apiReady:
	case <-ctx.Done():
		return g.Wait()
	}
	g.Go(func() error { return runMediaWorker(ctx, cfg, objects) })
	ag := newAgent(cfg)
	defer ag.Close()
	g.Go(func() error { return serveHTTP(ctx, "agent", cfg.AgentAddr, agent.NewHandler(ag, slog.Default()), nil) })
	agentControl, err := newAgentControl(cfg, ag)
	if err != nil {
		return err
	}
	g.Go(func() error { return ignoreCanceled(agentControl.Run(ctx)) })
	if demo {
		cam, err := startDemo(ctx, st, tc, cfg, secrets)
		if err != nil {
			return fmt.Errorf("demo camera: %w", err)
		}
		defer cam.Close()
	}
	printDevBanner(cfg, temporalUI)
	return g.Wait()
}

// devSecrets are generated on the first `vms dev` and kept in the data
// folder, so keys and URLs stay valid across restarts.
type devSecrets struct {
	APIKey      string `json:"api_key"`
	AgentKey    string `json:"agent_key"`
	S3AccessKey string `json:"s3_access_key"`
	S3SecretKey string `json:"s3_secret_key"`
	TokenSecret string `json:"token_secret"`
	WorkerKey   string `json:"worker_key"`
}

func loadDevSecrets(dir string) (devSecrets, error) {
	path := filepath.Join(dir, "dev-secrets.json")
	var s devSecrets
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s); err != nil {
			return s, fmt.Errorf("read %s: %w", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return s, err
	}
	fill := func(v *string, prefix string) {
		if *v == "" {
			*v = store.NewSecret(prefix)
		}
	}
	fill(&s.APIKey, "vms_")
	fill(&s.AgentKey, "agt_")
	fill(&s.S3SecretKey, "")
	fill(&s.TokenSecret, "")
	fill(&s.WorkerKey, "wrk_")
	if s.S3AccessKey == "" {
		s.S3AccessKey = "vmsdev"
	}
	b, _ = json.MarshalIndent(s, "", "  ")
	return s, os.WriteFile(path, b, 0o600)
}

// seedDev makes sure the dev account (admin), its API key, its agent and a
// local NVR instance for the in-process media worker exist.
func seedDev(ctx context.Context, st *store.Store, cfg config.Config, secrets devSecrets) error {
	acct, err := st.AccountByAPIKey(ctx, cfg.DevAPIKey)
	if errors.Is(err, store.ErrNotFound) {
		if acct, err = st.CreateAccount(ctx, "dev", true); err == nil {
			err = st.AddAPIKey(ctx, acct.ID, "dev key", cfg.DevAPIKey)
		}
	}
	if err != nil {
		return err
	}
	if _, err := st.AgentByKey(ctx, secrets.AgentKey); errors.Is(err, store.ErrNotFound) {
		if _, err := st.AddAgent(ctx, acct.ID, "dev agent", secrets.AgentKey); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return st.UpsertNVR(ctx, &store.NVR{Name: devNVR, MediaURL: mediaURL(cfg.MediaAddr), Capacity: cfg.NVRCapacity})
}

func printDevBanner(cfg config.Config, temporalUI string) {
	api := "http://" + hostPort(cfg.HTTPAddr)
	slog.Info("vms dev is up", "api", api)
	fmt.Printf(`
vms dev is running
  REST API       %s   (Authorization: Bearer %s)
  OpenAPI        %s/openapi.yaml
  Metrics        %s/metrics
  Temporal UI    %s   (frontend %s)
  S3             %s
  Media worker   %s
  Agent API      http://%s
  Data folder    %s
`, api, cfg.DevAPIKey, api, api, temporalUI, cfg.TemporalAddress, cfg.S3Endpoint, mediaURL(cfg.MediaAddr), hostPort(cfg.AgentAddr), cfg.DataDir)
}

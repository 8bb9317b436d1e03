package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/opennvr/vms/api"
	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/streamtoken"
)

// openStore opens and migrates the configured database.
func openStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	s, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openObjects connects to the configured S3 and makes sure the bucket exists.
func openObjects(ctx context.Context, cfg config.Config) (*objectstore.Client, error) {
	c, err := objectstore.New(ctx, objectstore.Config{
		Endpoint: cfg.S3Endpoint, Region: cfg.S3Region, Bucket: cfg.S3Bucket,
		AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey, PathStyle: cfg.S3PathStyle,
	})
	if err != nil {
		return nil, err
	}
	if err := c.EnsureBucket(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func newAPI(cfg config.Config, st *store.Store, objects *objectstore.Client, tc client.Client, rec api.SegmentRecorder) (*api.Server, error) {
	tokens, err := streamtoken.NewSigner(cfg.TokenSecret)
	if err != nil {
		return nil, fmt.Errorf("VMS_TOKEN_SECRET: %w", err)
	}
	if cfg.WorkerKey == "" {
		return nil, errors.New("VMS_WORKER_KEY must be set: media workers authenticate with it")
	}
	return api.New(api.Options{
		Store: st, Objects: objects, Temporal: tc, Tokens: tokens, Recorder: rec, WorkerKey: cfg.WorkerKey,
		PresignExpiry: cfg.PresignExpiry, ClipMaxLength: cfg.ClipMaxLength, SegmentLength: cfg.SegmentLength,
		ClipGrace: cfg.ClipGrace, TokenExpiry: cfg.TokenExpiry,
	}), nil
}

// serveHTTP listens on addr and serves h until ctx is done, then shuts down
// gracefully. ready, if not nil, is closed once the listener is up.
func serveHTTP(ctx context.Context, name, addr string, h http.Handler, ready chan<- struct{}) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listen %s: %w", name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		close(ready)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	slog.Info("listening", "server", name, "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s shutdown: %w", name, err)
	}
	return nil
}

// controlPlane is what the api and workflow-worker roles share: the
// configuration, the database, S3 and a Temporal client.
type controlPlane struct {
	cfg     config.Config
	st      *store.Store
	objects *objectstore.Client
	tc      client.Client
}

// openControlPlane connects to everything a control-plane role needs; close
// releases it.
func openControlPlane(ctx context.Context) (cp *controlPlane, err error) {
	cp = &controlPlane{}
	if cp.cfg, err = config.Load(); err != nil {
		return nil, err
	}
	if cp.st, err = openStore(ctx, cp.cfg); err != nil {
		return nil, err
	}
	if cp.objects, err = openObjects(ctx, cp.cfg); err == nil {
		cp.tc, err = dialTemporal(ctx, cp.cfg)
	}
	if err != nil {
		cp.st.Close()
		return nil, err
	}
	return cp, nil
}

func (cp *controlPlane) close() {
	cp.tc.Close()
	cp.st.Close()
}

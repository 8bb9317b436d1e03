package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/store"
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

// hostPort is a listen address as a local client dials it.
func hostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

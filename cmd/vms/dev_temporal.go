package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/workflows/contract"
	"github.com/opennvr/vms/workflows/devserver"
)

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

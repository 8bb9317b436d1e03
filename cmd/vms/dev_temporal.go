package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	tlog "go.temporal.io/sdk/log"

	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/workflows/devserver"
)

// startDevTemporal starts the real Temporal dev server (SQLite in the data
// folder, Web UI on 127.0.0.1) with the search attributes the workflows use,
// as a child that dies with this process.
func startDevTemporal(ctx context.Context, cfg config.Config) (*devserver.Server, error) {
	bin, err := temporalBinary(cfg.TemporalBin)
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(cfg.DataDir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the server writes to its own copy
	srv, err := devserver.Start(ctx, devserver.Options{
		Bin:        bin,
		Port:       cfg.DevTemporalPort,
		UIPort:     cfg.DevTemporalUIPort,
		DBFilename: filepath.Join(cfg.DataDir, "temporal.db"),
		Output:     logFile,
		Logger:     tlog.NewStructuredLogger(slog.Default().With("component", "temporal")),
	})
	if err != nil {
		return nil, fmt.Errorf("%w (its log: %s)", err, logFile.Name())
	}
	return srv, nil
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

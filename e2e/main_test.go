package e2e_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/opennvr/vms/objectstore/s3test"
)

// TestMain re-executes this binary in two roles besides running the tests:
// the embedded S3 server (s3test.Main serves when VMS_S3_CHILD=1) and a
// media worker process (VMS_E2E_WORKER holds its config), which the
// worker-kill test ends with SIGKILL and the ingest benchmark measures on
// its own.
func TestMain(m *testing.M) {
	level := slog.LevelWarn
	if os.Getenv("VMS_E2E_LOG") == "info" {
		level = slog.LevelInfo
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	if cfg := os.Getenv(envWorkerChild); cfg != "" {
		os.Exit(workerChildMain(cfg))
	}
	s3test.Main(m)
}

package e2e_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/opennvr/vms/objectstore/s3test"
)

// TestMain re-executes this binary in roles besides running the tests: the
// embedded S3 server (s3test.Main serves when VMS_S3_CHILD=1) and the
// children of childMains (a media worker, an agent, a workflow worker),
// which the fault tests kill and restart and the ingest benchmark measures
// on their own.
func TestMain(m *testing.M) {
	level := slog.LevelWarn
	if os.Getenv("VMS_E2E_LOG") == "info" {
		level = slog.LevelInfo
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	for role, main := range childMains {
		if cfg := os.Getenv(role); cfg != "" {
			os.Exit(main(cfg))
		}
	}
	s3test.Main(m)
}

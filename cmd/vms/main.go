// Command vms is the one binary of the cloud NVR: the REST API, the
// Temporal workflow worker, the media worker, the local agent, migrations,
// and `vms dev`, which runs all of them on embedded defaults. This package
// only wires the others together: each role's subcommand and its wiring sit
// in the file named for the role (api.go, workflow_worker.go, dev.go, …);
// wiring.go opens what the roles share (the database, S3, Temporal, an HTTP
// server).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "vms",
		Short:         "Cloud video management system: record IP cameras to S3, serve recordings, clips and snapshots",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(apiCmd(), workflowWorkerCmd(), mediaWorkerCmd(), agentCmd(), migrateCmd(), devCmd(), objectstoreCmd(), accountCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "vms:", err)
		os.Exit(1)
	}
}

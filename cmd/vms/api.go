package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/api"
	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/streamtoken"
)

func apiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "api",
		Short: "Run the REST API (public /v1, internal /internal/v1)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cp, err := openControlPlane(ctx)
			if err != nil {
				return err
			}
			defer cp.close()
			acts := &activities.Activities{Store: cp.st, Objects: cp.objects, Temporal: cp.tc}
			srv, err := newAPI(cp.cfg, cp.st, cp.objects, cp.tc, acts)
			if err != nil {
				return err
			}
			err = serveHTTP(ctx, "api", cp.cfg.HTTPAddr, srv.Handler(), nil)
			srv.Close() // agent control connections outlive the HTTP server
			return err
		},
	}
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

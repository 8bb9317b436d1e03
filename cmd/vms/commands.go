package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/store"
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

func migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load()
			if err != nil {
				return err
			}
			st, err := openStore(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Println("database migrated")
			return st.Close()
		},
	}
}

// objectstoreCmd is the embedded S3 server's own process (vms dev starts
// it): the gateway changes the working directory and allows one instance per
// process, so it cannot live inside the API process.
func objectstoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "objectstore",
		Short:  "Run the embedded S3 server (started by vms dev; configured through VMS_S3_* variables)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return objectstore.Serve(cmd.Context(), objectstore.ServerConfigFromEnv())
		},
	}
}

func accountCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Manage accounts"}
	var admin bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an account and print its first API key (and an agent key)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := config.Load()
			if err != nil {
				return err
			}
			st, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			acct, err := st.CreateAccount(ctx, args[0], admin)
			if err != nil {
				return err
			}
			key := store.NewSecret("vms_")
			if err := st.AddAPIKey(ctx, acct.ID, "first key", key); err != nil {
				return err
			}
			agent, agentKey, err := st.CreateAgent(ctx, acct.ID, args[0]+" agent")
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stdout, "account  %s\napi key  %s\nagent    %s\nagent key %s\n", acct.ID, key, agent.ID, agentKey)
			return nil
		},
	}
	create.Flags().BoolVar(&admin, "admin", false, "may manage NVR instances")
	cmd.AddCommand(create)
	return cmd
}

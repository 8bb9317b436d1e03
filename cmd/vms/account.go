package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/store"
)

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

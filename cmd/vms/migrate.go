package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/opennvr/vms/config"
)

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

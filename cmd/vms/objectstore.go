package main

import (
	"github.com/spf13/cobra"

	"github.com/opennvr/vms/objectstore"
)

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

package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/workflows/contract"
)

// ChannelWorkflow supervises a channel's recording.
func ChannelWorkflow(ctx workflow.Context, in contract.ChannelInput) error {
	return nil
}

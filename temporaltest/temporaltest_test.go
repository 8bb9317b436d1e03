package temporaltest_test

import (
	"testing"

	"go.temporal.io/api/operatorservice/v1"

	"github.com/opennvr/vms/temporaltest"
	"github.com/opennvr/vms/workflows/contract"
)

func TestStartRegistersSearchAttributes(t *testing.T) {
	c, hostPort := temporaltest.Start(t)
	if hostPort == "" {
		t.Fatal("no host:port")
	}
	sa, err := c.OperatorService().ListSearchAttributes(t.Context(), &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range contract.SearchAttributes {
		if _, ok := sa.CustomAttributes[name]; !ok {
			t.Errorf("search attribute %s not registered (have %v)", name, sa.CustomAttributes)
		}
	}
	// A second Start reuses the server.
	if _, again := temporaltest.Start(t); again != hostPort {
		t.Errorf("second Start on %s, first on %s", again, hostPort)
	}
}

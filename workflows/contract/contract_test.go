package contract_test

import (
	"os"
	"strings"
	"testing"

	"github.com/opennvr/vms/workflows/contract"
)

// TestComposeRegistersSearchAttributes: the Docker stack registers every
// search attribute the workflows upsert (the dev server registers them from
// contract.SearchAttributes itself); a missing one fails every workflow
// that sets it.
func TestComposeRegistersSearchAttributes(t *testing.T) {
	b, err := os.ReadFile("../../docker/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range contract.SearchAttributes {
		if !strings.Contains(string(b), "--name "+name+" --type Keyword") {
			t.Errorf("docker/compose.yaml does not register the search attribute %s", name)
		}
	}
}

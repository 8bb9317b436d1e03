package mediaworker_test

import (
	"testing"

	"github.com/opennvr/vms/objectstore/s3test"
)

func TestMain(m *testing.M) { s3test.Main(m) }

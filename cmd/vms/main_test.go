package main

import (
	"os"
	"testing"
)

// envRunMain makes the test binary run as the vms command, so tests start
// real `vms dev` processes (and vms dev its `vms objectstore` child) from
// this very build.
const envRunMain = "VMS_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

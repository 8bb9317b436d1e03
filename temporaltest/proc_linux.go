package temporaltest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel SIGTERM the dev server when the test
// binary dies, so no server outlives its tests.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

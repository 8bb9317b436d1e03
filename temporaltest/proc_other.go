//go:build !linux

package temporaltest

import "os/exec"

// setParentDeathSignal is Linux-only; elsewhere a crashed test binary may
// leave its dev server running.
func setParentDeathSignal(*exec.Cmd) {}

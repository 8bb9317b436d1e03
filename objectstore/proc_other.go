//go:build !linux

package objectstore

import "os/exec"

// setParentDeathSignal is Linux-only; elsewhere the child outlives a
// crashed parent until stopped.
func setParentDeathSignal(*exec.Cmd) {}

// xattrSupported is only probed on Linux; elsewhere sidecar metadata works
// everywhere, so use it.
func xattrSupported(string) bool { return false }

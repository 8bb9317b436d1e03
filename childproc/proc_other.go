//go:build !linux

package childproc

import (
	"errors"
	"os/exec"
	"syscall"
)

// setParentDeathSignal is Linux-only; elsewhere a child outlives a crashed
// parent until stopped.
func setParentDeathSignal(*exec.Cmd, syscall.Signal) {}

var errNoProc = errors.New("no /proc on this system")

// identify needs /proc: without it no recorded process counts as ours.
func identify(int) (identity, error) { return identity{}, errNoProc }

func terminate(int, bool) error { return errNoProc }

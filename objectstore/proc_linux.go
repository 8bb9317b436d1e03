package objectstore

import (
	"os"
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel SIGTERM the child when the parent
// dies, so a crashed VMS or test binary leaves no orphaned S3 server.
// (Strictly, it fires when the forking OS thread exits; Go keeps threads
// alive unless a goroutine exits while locked to one.)
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// xattrSupported reports whether files in dir accept user xattrs. It sets
// one for real: probing with a get is not enough on filesystems that
// report "no such attribute" but refuse to store any.
func xattrSupported(dir string) bool {
	f, err := os.CreateTemp(dir, ".xattr-probe-*")
	if err != nil {
		return false
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	return syscall.Setxattr(name, "user.vms.probe", []byte("1"), 0) == nil
}

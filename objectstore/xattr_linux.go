package objectstore

import (
	"os"
	"syscall"
)

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

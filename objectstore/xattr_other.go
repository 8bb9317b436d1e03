//go:build !linux

package objectstore

// xattrSupported is only probed on Linux; elsewhere sidecar metadata works
// everywhere, so use it.
func xattrSupported(string) bool { return false }

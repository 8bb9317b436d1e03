//go:build !unix

package childproc

// Lock is a no-op where there is no flock (Windows). StopLeftover stops
// nothing there either, so no run can take another's children for
// leftovers.
func Lock(string) (release func(), err error) { return func() {}, nil }

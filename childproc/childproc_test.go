//go:build linux

package childproc

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain keeps the main thread for the main goroutine. The runtime never
// ends the main thread, even when a goroutine locked to it exits, so a test
// goroutine that happened to run there could not show a thread's end.
func TestMain(m *testing.M) {
	runtime.LockOSThread()
	os.Exit(m.Run())
}

func startSleep(t *testing.T) *Process {
	t.Helper()
	p, err := Start(exec.Command("sleep", "60"), syscall.SIGKILL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(0) })
	return p
}

func exited(p *Process, within time.Duration) bool {
	select {
	case <-p.Done():
		return true
	case <-time.After(within):
		return false
	}
}

// The parent-death signal belongs to the forking thread: a child started
// from a goroutine whose locked thread then ends must live on.
func TestStartSurvivesCallerThread(t *testing.T) {
	got := make(chan *Process, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		got <- startSleep(t)
	}()
	p := <-got
	if exited(p, 300*time.Millisecond) {
		t.Fatalf("child ended with its caller's thread: %v", p.Err())
	}
	if p.Stop(time.Second) {
		t.Error("sleep ignored SIGTERM")
	}
}

func TestStopLeftover(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(*record) // what changed since the record was written
		wantStop bool
	}{
		{"the recorded process", func(*record) {}, true},
		{"pid reused by another process", func(r *record) { r.Start++ }, false},
		{"pid reused by another command", func(r *record) { r.Cmdline = []string{"sleep", "61"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startSleep(t)
			path := filepath.Join(t.TempDir(), "child.pid")
			if err := WritePIDFile(path, p.Pid()); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			var rec record
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatal(err)
			}
			tc.edit(&rec)
			b, _ = json.Marshal(rec)
			os.WriteFile(path, b, 0o644)

			pid, err := StopLeftover(context.Background(), path, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if stopped := pid != 0; stopped != tc.wantStop || exited(p, 100*time.Millisecond) != tc.wantStop {
				t.Errorf("stopped pid %d, child exited %v; want stopped %v", pid, !tc.wantStop, tc.wantStop)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("pid file kept: %v", err)
			}
		})
	}
	t.Run("no pid file", func(t *testing.T) {
		if pid, err := StopLeftover(context.Background(), filepath.Join(t.TempDir(), "none.pid"), time.Second); pid != 0 || err != nil {
			t.Errorf("StopLeftover = %d, %v", pid, err)
		}
	})
}

// A second holder of the lock is refused and told who holds it; released,
// the lock can be taken again.
func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	release, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(path); err == nil || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second Lock: %v, want held by this process", err)
	}
	release()
	release2, err := Lock(path)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	release2()
}

func TestPortFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	err = PortFree(context.Background(), addr, "test server", 0)
	if err == nil || !strings.Contains(err.Error(), "port "+addr+" (test server)") {
		t.Errorf("PortFree on a held port: %v", err)
	}
	// Released while PortFree waits: free.
	time.AfterFunc(100*time.Millisecond, func() { l.Close() })
	if err := PortFree(context.Background(), addr, "test server", 5*time.Second); err != nil {
		t.Errorf("PortFree after release: %v", err)
	}
}

// Package temporaltest gives tests a real Temporal server: the Temporal
// CLI's dev server (the binary the Makefile builds into bin/temporal), one
// per test binary, on a free port, with in-memory SQLite and the VMS search
// attributes registered. The server dies with the test binary.
//
//	func TestSomething(t *testing.T) {
//		c, _ := temporaltest.Start(t)
//		tq := temporaltest.Worker(t, c, func(r worker.Registry) { workflows.Register(r, acts) })
//		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, ...)
//	}
//
// The binary is $VMS_TEMPORAL_BIN, else <module root>/bin/temporal.
// VMS_TEMPORALTEST_UI=1 also serves the Web UI (on a free port, logged).
package temporaltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/workflows/contract"
	"github.com/opennvr/vms/workflows/devserver"
)

// server is the one dev server a test binary shares across its tests. It is
// package state because Start has no other handle on it.
var server struct {
	once     sync.Once
	hostPort string
	err      error
}

// Start returns a client of the test binary's dev server (started on first
// use, in about two seconds) and the server's host:port. The client is
// closed when the test ends.
func Start(t testing.TB) (client.Client, string) {
	t.Helper()
	server.once.Do(func() { server.hostPort, server.err = startServer() })
	if server.err != nil {
		t.Fatalf("temporaltest: %v", server.err)
	}
	c, err := client.Dial(client.Options{HostPort: server.hostPort, Logger: Logger()})
	if err != nil {
		t.Fatalf("temporaltest: dial %s: %v", server.hostPort, err)
	}
	t.Cleanup(c.Close)
	return c, server.hostPort
}

// Worker runs a worker for the rest of the test on a task queue of its own,
// which it returns: start the test's workflows there. Workflows a test
// leaves running then never reach a later test's worker (and its
// dependencies).
func Worker(t testing.TB, c client.Client, register func(worker.Registry)) string {
	return WorkerWithOptions(t, c, worker.Options{}, register)
}

// WorkerWithOptions is Worker with worker options (benchmarks raise the
// pollers and task slots).
func WorkerWithOptions(t testing.TB, c client.Client, opts worker.Options, register func(worker.Registry)) string {
	t.Helper()
	tq := TaskQueue(t)
	w := worker.New(c, tq, opts)
	register(w)
	if err := w.Start(); err != nil {
		t.Fatalf("temporaltest: start worker: %v", err)
	}
	t.Cleanup(w.Stop)
	return tq
}

// TaskQueue is a task queue name unique to this test.
func TaskQueue(t testing.TB) string {
	suffix := make([]byte, 4)
	rand.Read(suffix)
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s-%s-%s", contract.TaskQueue, name, hex.EncodeToString(suffix))
}

// Logger is the SDK logger tests use: warnings and errors only.
func Logger() tlog.Logger {
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// Binary finds the dev server binary: $VMS_TEMPORAL_BIN, else
// <module root>/bin/temporal.
func Binary() (string, error) {
	if p := os.Getenv("VMS_TEMPORAL_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("VMS_TEMPORAL_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", "temporal")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no Temporal dev server at %s: build it with `make bin/temporal` "+
			"(go install github.com/temporalio/cli/cmd/temporal@v1.5.1) or set VMS_TEMPORAL_BIN", p)
	}
	return p, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: set VMS_TEMPORAL_BIN")
		}
		dir = parent
	}
}

func startServer() (string, error) {
	bin, err := Binary()
	if err != nil {
		return "", err
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	opts := devserver.Options{Bin: bin, Port: port, LogLevel: "error", Logger: Logger()}
	if os.Getenv("VMS_TEMPORALTEST_UI") == "1" {
		if opts.UIPort, err = freePort(); err != nil {
			return "", err
		}
		slog.Info("temporaltest: Web UI", "url", fmt.Sprintf("http://127.0.0.1:%d", opts.UIPort))
	}
	// The server's output only matters when it fails to come up.
	out := &tail{max: 16 << 10}
	opts.Output = out
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// It runs for the rest of the test binary and dies with it.
	srv, err := devserver.Start(ctx, opts)
	if err != nil {
		return "", fmt.Errorf("%w; its output:\n%s", err, out)
	}
	srv.Client.Close()
	return srv.HostPort, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

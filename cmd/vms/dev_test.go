//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opennvr/vms/childproc"
	"github.com/opennvr/vms/temporaltest"
)

// A killed vms dev takes its servers with it, and the next start on the same
// data folder copes with whatever an earlier one left: its own leftover
// server is stopped, a stranger on one of its ports is named.
func TestDevProcessHygiene(t *testing.T) {
	bin, err := temporaltest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	d := newDevProcs(t, bin)

	t.Run("port held by a stranger", func(t *testing.T) {
		l, err := net.Listen("tcp", d.s3Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		p := d.start(t)
		waitExit(t, p, 20*time.Second)
		if out := p.String(); !strings.Contains(out, "port "+d.s3Addr) || !strings.Contains(out, "in use") {
			t.Errorf("vms dev failed without naming port %s:\n%s", d.s3Addr, out)
		}
	})

	t.Run("killed, its servers go too", func(t *testing.T) {
		p := d.start(t)
		d.waitHealthy(t, p)
		children := []int{d.pidFile(t, temporalPIDFile).PID, d.pidFile(t, s3PIDFile).PID}
		if err := syscall.Kill(p.proc.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitExit(t, p, 10*time.Second)
		waitGone(t, children...)
	})

	t.Run("its leftover Temporal server is stopped", func(t *testing.T) {
		// What a vms dev that died without taking its child along leaves:
		// the recorded server, running, on its port and database.
		rec := d.pidFile(t, temporalPIDFile)
		cmd := exec.Command(rec.Cmdline[0], rec.Cmdline[1:]...)
		leftover, err := childproc.Start(cmd, syscall.SIGKILL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { leftover.Stop(0) })
		if err := childproc.WritePIDFile(filepath.Join(d.dir, temporalPIDFile), leftover.Pid()); err != nil {
			t.Fatal(err)
		}
		waitListening(t, d.temporalAddr, leftover)

		p := d.start(t)
		d.waitHealthy(t, p)
		select {
		case <-leftover.Done():
		default:
			t.Error("vms dev is up and the leftover server still runs")
		}
		children := []int{d.pidFile(t, temporalPIDFile).PID, d.pidFile(t, s3PIDFile).PID}

		// A clean stop stops the servers and forgets them.
		if err := syscall.Kill(p.proc.Pid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitExit(t, p, 30*time.Second)
		if err := p.proc.Err(); err != nil {
			t.Errorf("vms dev exited with %v:\n%s", err, p)
		}
		waitGone(t, children...)
		for _, name := range []string{temporalPIDFile, s3PIDFile} {
			if _, err := os.Stat(filepath.Join(d.dir, name)); !os.IsNotExist(err) {
				t.Errorf("%s left after a clean stop (%v)", name, err)
			}
		}
	})
}

// devProcs starts vms dev processes on one data folder and a set of free
// loopback ports.
type devProcs struct {
	dir, httpAddr, s3Addr, temporalAddr string
	env                                 []string
}

type devProc struct {
	proc *childproc.Process
	out  *os.File
}

// String is the process's output so far, for failure messages.
func (p *devProc) String() string {
	b, _ := os.ReadFile(p.out.Name())
	return string(b)
}

func newDevProcs(t *testing.T, temporalBin string) *devProcs {
	d := &devProcs{dir: t.TempDir()}
	ports := make([]int, 6)
	for i := range ports {
		ports[i] = freePort(t)
	}
	d.httpAddr, d.s3Addr, d.temporalAddr = loopback(ports[0]), loopback(ports[3]), loopback(ports[4])
	d.env = append(os.Environ(),
		envRunMain+"=1",
		"VMS_DATA_DIR="+d.dir,
		"VMS_HTTP_ADDR="+d.httpAddr,
		"VMS_AGENT_ADDR="+loopback(ports[1]),
		"VMS_MEDIA_ADDR="+loopback(ports[2]),
		"VMS_S3_ADDR="+d.s3Addr,
		"VMS_TEMPORAL_PORT="+strconv.Itoa(ports[4]),
		"VMS_TEMPORAL_UI_PORT="+strconv.Itoa(ports[5]),
		"VMS_TEMPORAL_BIN="+temporalBin,
		"TEMPORAL_ADDRESS=", "S3_ENDPOINT=", "DATABASE_URL=", "VMS_DEV_API_KEY=",
	)
	// Whatever a failed test leaves, the next vms dev would stop: so does
	// the test.
	t.Cleanup(func() {
		for _, name := range []string{temporalPIDFile, s3PIDFile} {
			childproc.StopLeftover(context.Background(), filepath.Join(d.dir, name), time.Second)
		}
	})
	return d
}

// start runs `vms dev`; it is killed when the test ends, or with the test
// binary.
func (d *devProcs) start(t *testing.T) *devProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "dev")
	cmd.Env = d.env
	// A file, not a pipe: a child that outlived its vms dev would hold a
	// pipe open, and waiting for vms dev would wait for that child too.
	out, err := os.CreateTemp(d.dir, "vms-dev-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	proc, err := childproc.Start(cmd, syscall.SIGKILL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Stop(5 * time.Second) })
	return &devProc{proc: proc, out: out}
}

func (d *devProcs) waitHealthy(t *testing.T, p *devProc) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		resp, err := http.Get("http://" + d.httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.proc.Done():
			t.Fatalf("vms dev exited (%v) before /healthz answered:\n%s", p.proc.Err(), p)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer within 45 s:\n%s", p)
		}
	}
}

func waitExit(t *testing.T, p *devProc, within time.Duration) {
	t.Helper()
	select {
	case <-p.proc.Done():
	case <-time.After(within):
		t.Fatalf("vms dev still runs after %s:\n%s", within, p)
	}
}

// pidFile reads what vms dev recorded about a child.
func (d *devProcs) pidFile(t *testing.T, name string) (rec struct {
	PID     int      `json:"pid"`
	Cmdline []string `json:"cmdline"`
}) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.PID <= 0 || len(rec.Cmdline) == 0 {
		t.Fatalf("%s: %q (%v)", name, b, err)
	}
	return rec
}

// waitGone waits until none of pids runs (a zombie no longer does).
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, pid := range pids {
		for processRuns(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func processRuns(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// waitListening waits until something listens on addr.
func waitListening(t *testing.T, addr string, p *childproc.Process) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("process exited before listening on %s: %v", addr, p.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", addr)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

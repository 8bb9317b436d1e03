package childproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"time"
)

// record is what a pid file holds: enough to tell the recorded child from a
// later process that got the same pid.
type record struct {
	PID     int      `json:"pid"`
	Start   uint64   `json:"start"` // start time, in clock ticks since boot
	Cmdline []string `json:"cmdline"`
}

// identity is what /proc says about a process.
type identity struct {
	start   uint64
	cmdline []string
	zombie  bool
}

// WritePIDFile records the running child pid in path, for StopLeftover in a
// later run. Where the process cannot be identified (no /proc) it writes
// nothing: StopLeftover could not tell the child from a stranger anyway.
func WritePIDFile(path string, pid int) error {
	id, err := identify(pid)
	if errors.Is(err, errNoProc) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	b, _ := json.Marshal(record{PID: pid, Start: id.start, Cmdline: id.cmdline})
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// RemovePIDFile forgets a child that has exited.
func RemovePIDFile(path string) {
	_ = os.Remove(path)
}

// StopLeftover stops the child recorded in path if that very process (same
// pid, start time and command line) still runs, waits until it is gone, and
// removes the file. It reports the pid it stopped, 0 if none. Only call it
// under the Lock the recording run held: otherwise the child may belong to
// a run that is still alive.
func StopLeftover(ctx context.Context, path string, grace time.Duration) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil || rec.PID <= 0 {
		// Not ours to interpret: a torn write from a killed run.
		RemovePIDFile(path)
		return 0, nil
	}
	if !rec.running() {
		RemovePIDFile(path)
		return 0, nil
	}
	if err := stopProcess(ctx, rec, grace); err != nil {
		return 0, fmt.Errorf("stop leftover process %d (%s): %w", rec.PID, path, err)
	}
	RemovePIDFile(path)
	return rec.PID, nil
}

// running reports whether the recorded process still runs (a zombie does
// not: it holds no ports or files any more).
func (rec record) running() bool {
	id, err := identify(rec.PID)
	return err == nil && !id.zombie && id.start == rec.Start && slices.Equal(id.cmdline, rec.Cmdline)
}

// stopProcess sends SIGTERM, then SIGKILL after grace, and waits until the
// process is gone.
func stopProcess(ctx context.Context, rec record, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, grace+5*time.Second)
	defer cancel()
	if err := terminate(rec.PID, false); err != nil {
		return err
	}
	killAt := time.Now().Add(grace)
	killed := false
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for rec.running() {
		if !killed && time.Now().After(killAt) {
			if err := terminate(rec.PID, true); err != nil {
				return err
			}
			killed = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// PortFree checks that addr (host:port) can be listened on, retrying for up
// to wait: a process that just died may take a moment to release it. The
// error names the port and what it is for (what, e.g. "Temporal frontend").
func PortFree(ctx context.Context, addr, what string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			return l.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("port %s (%s) is in use by another process: stop it, or choose another port: %w", addr, what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Package childproc runs the helper processes a vms process depends on (the
// Temporal dev server, the embedded S3 server) so that they do not outlive
// it, and finds the ones an earlier run that was killed left behind.
//
// On Linux a child gets a signal from the kernel when its parent dies
// (Pdeathsig). A run also records each child in a pid file under a lock it
// holds for its lifetime (Lock): the next run on the same folder takes the
// lock, so any child still recorded there is a leftover it may stop
// (StopLeftover). Elsewhere a crashed parent's children keep running until
// stopped, and a leftover holding a port makes the next start fail with
// the port named (PortFree).
package childproc

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is a running child.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid once done is closed
}

// Start starts cmd and has the kernel send it sig when this process dies
// (Linux). The parent-death signal is tied to the OS thread that forked the
// child, not to the process: the fork happens on a goroutine locked to its
// thread that then waits for the child, so the thread, and with it the
// signal, lasts exactly as long as the child does. (Go would otherwise be
// free to end that thread whenever a goroutine exits while locked to it.)
func Start(cmd *exec.Cmd, sig syscall.Signal) (*Process, error) {
	setParentDeathSignal(cmd, sig)
	p := &Process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, after the child.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the child exited (nil: status 0); valid once Done is closed.
func (p *Process) Err() error { return p.err }

// Stop asks the child to end (SIGTERM), kills it if it has not exited after
// grace, and waits for it. It reports whether the child had to be killed;
// Err then tells how it exited.
func (p *Process) Stop(grace time.Duration) (killed bool) {
	select {
	case <-p.done:
		return false
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		// No SIGTERM on this system (Windows): kill right away.
		grace = 0
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return false
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return true
	}
}

package childproc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

func setParentDeathSignal(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
}

var errNoProc = errors.New("no such process")

func identify(pid int) (identity, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return identity{}, errNoProc
	}
	if err != nil {
		return identity{}, err
	}
	// The fields after the command name, which may hold spaces and
	// parentheses: state is the 3rd field of the line, starttime the 22nd.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 20 {
		return identity{}, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return identity{}, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	id := identity{start: start, zombie: f[0] == "Z"}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if errors.Is(err, os.ErrNotExist) {
		return identity{}, errNoProc
	}
	if err != nil {
		return identity{}, err
	}
	if s := strings.TrimSuffix(string(cmdline), "\x00"); s != "" {
		id.cmdline = strings.Split(s, "\x00")
	}
	return id, nil
}

func terminate(pid int, kill bool) error {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

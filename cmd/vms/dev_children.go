package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/opennvr/vms/childproc"
	"github.com/opennvr/vms/config"
)

// What vms dev keeps in its data folder about the servers it runs as child
// processes: a lock held for its lifetime, and a pid file per child.
const (
	devLockFile     = "vms-dev.lock"
	temporalPIDFile = "temporal.pid"
	s3PIDFile       = "s3.pid"
	// leftoverGrace is how long a leftover child gets to shut down cleanly
	// (the Temporal dev server flushes its SQLite database) before SIGKILL.
	leftoverGrace = 5 * time.Second
	// portRelease is how long a stopped leftover's ports may take to free.
	portRelease = 2 * time.Second
)

// claimDataDir makes this the one vms dev on cfg.DataDir, stops the
// children an earlier vms dev there left running when it was killed, and
// checks that the ports this run's children will listen on are free, so a
// stale server is never mistaken for a fresh one. The children normally
// die with their parent (childproc); leftovers come from a platform without
// a parent-death signal or a child that ignored it.
func claimDataDir(ctx context.Context, cfg config.Config) (release func(), err error) {
	unlock, err := childproc.Lock(filepath.Join(cfg.DataDir, devLockFile))
	if err != nil {
		return nil, fmt.Errorf("data folder %s is in use by another vms dev: %w", cfg.DataDir, err)
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	wait := time.Duration(0)
	for _, name := range []string{temporalPIDFile, s3PIDFile} {
		path := filepath.Join(cfg.DataDir, name)
		pid, err := childproc.StopLeftover(ctx, path, leftoverGrace)
		if err != nil {
			return nil, err
		}
		if pid != 0 {
			slog.Warn("stopped a server an earlier vms dev left running", "pid", pid, "pid_file", path)
			wait = portRelease
		}
	}
	type port struct{ addr, what string }
	var ports []port
	if cfg.S3Endpoint == "" {
		ports = append(ports, port{cfg.DevS3Addr, "embedded S3, VMS_S3_ADDR"})
	}
	if cfg.TemporalAddress == "" {
		ports = append(ports,
			port{loopback(cfg.DevTemporalPort), "Temporal dev server, VMS_TEMPORAL_PORT"},
			port{loopback(cfg.DevTemporalUIPort), "Temporal Web UI, VMS_TEMPORAL_UI_PORT"})
	}
	for _, p := range ports {
		if err := childproc.PortFree(ctx, p.addr, p.what, wait); err != nil {
			return nil, err
		}
	}
	return unlock, nil
}

// recordChild notes a started child in the data folder, for claimDataDir in
// a later run should this one be killed; forget removes the note once the
// child has stopped (forget is never nil).
func recordChild(cfg config.Config, name string, pid int) (forget func(), err error) {
	path := filepath.Join(cfg.DataDir, name)
	return func() { childproc.RemovePIDFile(path) }, childproc.WritePIDFile(path, pid)
}

func loopback(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

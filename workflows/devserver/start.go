package devserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/opennvr/vms/childproc"
	"github.com/opennvr/vms/workflows/contract"
)

const (
	// readyTimeout bounds the start: the server answers in about two
	// seconds, far longer on a loaded machine's first SQLite setup.
	readyTimeout = 60 * time.Second
	// stopGrace is how long the server gets to shut down before it is killed.
	stopGrace = 10 * time.Second
)

// Options say how to run one dev server. It listens on 127.0.0.1 only.
type Options struct {
	Bin        string      // the Temporal CLI binary
	Port       int         // frontend (gRPC) port
	UIPort     int         // Web UI port; 0: no UI
	DBFilename string      // SQLite file; empty: in memory
	LogLevel   string      // empty: warn
	Output     io.Writer   // the server's stdout and stderr; nil: discarded
	Logger     tlog.Logger // the client's logger
}

// Server is a running dev server, a child of this process (see childproc:
// it gets SIGTERM when this process dies).
type Server struct {
	HostPort string
	Client   client.Client
	proc     *childproc.Process
}

// Start starts the dev server, with the search attributes the workflows use
// registered, and waits until its frontend answers.
func Start(ctx context.Context, o Options) (*Server, error) {
	cmd := exec.Command(o.Bin, o.args()...)
	cmd.Stdout, cmd.Stderr = o.Output, o.Output
	proc, err := childproc.Start(cmd, syscall.SIGTERM)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Bin, err)
	}
	s := &Server{proc: proc, HostPort: net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port))}
	if s.Client, err = waitReady(ctx, s, o.Logger); err != nil {
		proc.Stop(0)
		return nil, err
	}
	return s, nil
}

func (o Options) args() []string {
	logLevel := o.LogLevel
	if logLevel == "" {
		logLevel = "warn"
	}
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(o.Port),
		"--namespace", "default",
		"--log-level", logLevel,
		"--dynamic-config-value", "frontend.enableServerVersionCheck=false",
	}
	if o.UIPort == 0 {
		args = append(args, "--headless")
	} else {
		args = append(args, "--ui-port", strconv.Itoa(o.UIPort))
	}
	if o.DBFilename != "" {
		args = append(args, "--db-filename", o.DBFilename)
	}
	for _, name := range contract.SearchAttributes {
		args = append(args, "--search-attribute", name+"=Keyword")
	}
	return append(args, Args...)
}

// waitReady dials the frontend until it answers, the server exits or the
// start times out.
func waitReady(ctx context.Context, s *Server, logger tlog.Logger) (client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		c, err := client.DialContext(ctx, client.Options{HostPort: s.HostPort, Namespace: "default", Logger: logger})
		if err == nil {
			return c, nil
		}
		select {
		case <-s.proc.Done():
			return nil, fmt.Errorf("dev server exited before it was ready: %v", s.proc.Err())
		case <-ctx.Done():
			return nil, fmt.Errorf("dev server at %s not ready: %w", s.HostPort, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop closes the client and stops the server, killing it if it does not
// shut down within a few seconds.
func (s *Server) Stop() error {
	s.Client.Close()
	if s.proc.Stop(stopGrace) {
		return fmt.Errorf("dev server ignored SIGTERM for %s, killed", stopGrace)
	}
	return s.proc.Err()
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.proc.Pid() }

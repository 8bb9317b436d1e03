package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/agent"
	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/childproc"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/temporaltest"
	"github.com/opennvr/vms/workflows"
)

// The roles this test binary plays in a child process besides the tests:
// each variable carries the child's config (JSON). See TestMain.
const (
	envWorkerChild    = "VMS_E2E_WORKER"    // a media worker (workerConfig)
	envAgentChild     = "VMS_E2E_AGENT"     // a local agent (agentConfig)
	envWorkflowsChild = "VMS_E2E_WORKFLOWS" // a workflow worker (workflowsConfig)
)

// childMains are the children's entry points by role.
var childMains = map[string]func(raw string) int{
	envWorkerChild:    workerChildMain,
	envAgentChild:     agentChildMain,
	envWorkflowsChild: workflowsChildMain,
}

// childProcess is this test binary re-executed in one of the child roles.
type childProcess struct {
	role string
	cmd  *exec.Cmd
	proc *childproc.Process
	log  string // its stdout and stderr
}

// startChild starts a child in role with cfg. It is killed when the test
// ends (or the test binary dies), if still running; its log is shown when
// the test failed or VMS_E2E_LOG is set.
func startChild(tb testing.TB, role string, cfg any) *childProcess {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	logf, err := os.CreateTemp(tb.TempDir(), "child-*.log")
	if err != nil {
		tb.Fatal(err)
	}
	// The child has its own descriptor of the log file.
	defer logf.Close()
	p := &childProcess{role: role, cmd: exec.Command(exe, "-test.run=^$"), log: logf.Name()}
	p.cmd.Env = append(os.Environ(), role+"="+string(b))
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if p.proc, err = childproc.Start(p.cmd, syscall.SIGKILL); err != nil {
		tb.Fatalf("start %s child: %v", role, err)
	}
	tb.Cleanup(func() {
		p.kill()
		if tb.Failed() || os.Getenv("VMS_E2E_LOG") != "" {
			b, _ := os.ReadFile(p.log)
			tb.Logf("%s child %d log:\n%s", role, p.pid(), tail(string(b), 8<<10))
		}
	})
	return p
}

// kill ends the child with SIGKILL, as a crash or the OOM killer would,
// and waits for it to be gone.
func (p *childProcess) kill() {
	select {
	case <-p.proc.Done():
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.proc.Done()
}

// stop ends the child with SIGTERM (it shuts down cleanly) and waits.
func (p *childProcess) stop() { p.proc.Stop(15 * time.Second) }

func (p *childProcess) pid() int { return p.proc.Pid() }

// childContext is a child's lifetime: until SIGTERM or an interrupt.
func childContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// agentConfig is a local agent, wired as `vms agent` wires it
// (cmd/vms/agent.go): its stream manager and its control channel.
type agentConfig struct {
	APIURL string `json:"api_url"`
	Key    string `json:"key"`
}

// startAgentProcess runs the account's agent in a child process: it
// connects its control channel and records what its channels' supervisors
// command.
func (e *env) startAgentProcess(tb testing.TB) *childProcess {
	tb.Helper()
	return startChild(tb, envAgentChild, agentConfig{APIURL: e.apiURL, Key: e.agentKey})
}

func agentChildMain(raw string) int {
	var cfg agentConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		slog.Error("agent child: bad config", "err", err)
		return 2
	}
	ctx, stop := childContext()
	defer stop()
	cp := &agent.ControlPlane{API: &apiclient.Client{BaseURL: cfg.APIURL, Key: cfg.Key}}
	m := agent.NewManager(agent.ManagerConfig{Resolver: cp, Tokens: cp})
	defer m.Close()
	u, err := agent.ControlURL(cfg.APIURL)
	if err != nil {
		slog.Error("agent child", "err", err)
		return 1
	}
	c := &agent.ControlClient{URL: u, Key: cfg.Key, Commands: &agent.Executor{Streams: m}}
	if err := c.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		slog.Error("agent child", "err", err)
		return 1
	}
	return 0
}

// workflowsConfig is a workflow worker, wired as `vms workflow-worker`
// wires it, on the env's SQLite file, S3 and task queue.
type workflowsConfig struct {
	DB        string             `json:"db"`
	Temporal  string             `json:"temporal"` // host:port
	TaskQueue string             `json:"task_queue"`
	S3        objectstore.Config `json:"s3"`
}

func workflowsChildMain(raw string) int {
	var cfg workflowsConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		slog.Error("workflow worker child: bad config", "err", err)
		return 2
	}
	ctx, stop := childContext()
	defer stop()
	fail := func(err error) int {
		slog.Error("workflow worker child", "err", err)
		return 1
	}
	st, err := store.Open(ctx, cfg.DB)
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	objects, err := objectstore.New(ctx, cfg.S3)
	if err != nil {
		return fail(err)
	}
	tc, err := client.Dial(client.Options{HostPort: cfg.Temporal, Logger: temporaltest.Logger()})
	if err != nil {
		return fail(err)
	}
	defer tc.Close()
	w := worker.New(tc, cfg.TaskQueue, worker.Options{})
	workflows.Register(w, &activities.Activities{Store: st, Objects: objects, Temporal: tc})
	if err := w.Start(); err != nil {
		return fail(err)
	}
	<-ctx.Done()
	w.Stop()
	return 0
}

package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/recording"
)

// envWorkerChild carries a workerConfig (JSON) to a media worker child.
const envWorkerChild = "VMS_E2E_WORKER"

// workerConfig is one media worker, wired as `vms media-worker` wires it
// (cmd/vms/media.go runMediaWorker).
type workerConfig struct {
	Name      string             `json:"name"`
	Addr      string             `json:"addr"`     // listen address, host:port
	DataDir   string             `json:"data_dir"` // spool/ready and spool/writing below it
	APIURL    string             `json:"api_url"`
	WorkerKey string             `json:"worker_key"`
	Segment   time.Duration      `json:"segment"`
	S3        objectstore.Config `json:"s3"`
	// StubControl grants every token without a control plane and
	// DiscardUploads drops segments instead of uploading them: the ingest
	// benchmark measures the worker alone with them.
	StubControl    bool `json:"stub_control,omitempty"`
	DiscardUploads bool `json:"discard_uploads,omitempty"`
}

func (c workerConfig) url() string      { return "ws://" + c.Addr + "/v1/ingest" }
func (c workerConfig) spoolDir() string { return filepath.Join(c.DataDir, "spool", "ready") }

// workerCapacity is the channel capacity a test's NVR registers with.
const workerCapacity = 1000

// runWorker registers the worker as an NVR instance, then serves ingest on
// ln and drains the spool until ctx ends, as runMediaWorker does.
func runWorker(ctx context.Context, cfg workerConfig, objects *objectstore.Client, ln net.Listener) error {
	var control mediaworker.ControlPlane = stubControl{}
	var api *mediaworker.APIClient
	if !cfg.StubControl {
		api = &mediaworker.APIClient{API: &apiclient.Client{BaseURL: cfg.APIURL, Key: cfg.WorkerKey}, Worker: cfg.Name}
		if err := api.Register(ctx, cfg.Name, cfg.url(), workerCapacity); err != nil {
			return fmt.Errorf("register NVR instance: %w", err)
		}
		control = api
	}
	var uploader mediaworker.Uploader = mediaworker.ObjectUploader{Objects: objects}
	if cfg.DiscardUploads {
		uploader = discardUploader{}
	}
	spool := &mediaworker.Spool{Dir: cfg.spoolDir(), WorkDir: filepath.Join(cfg.DataDir, "spool", "writing"),
		Uploader: uploader, Control: control}
	srv := &mediaworker.Server{Control: control, Spool: spool, SegmentLength: cfg.Segment}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := spool.Run(ctx); !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
	if api != nil {
		// Without the heartbeat the NVR goes stale after
		// recording.NVRStaleAfter and supervisors try to move its channels.
		g.Go(func() error {
			_ = api.KeepRegistered(ctx, cfg.Name, cfg.url(), workerCapacity, recording.NVRHeartbeat)
			return nil
		})
	}
	g.Go(func() error {
		errc := make(chan error, 1)
		go func() { errc <- hs.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := hs.Shutdown(sctx)
		// Streams outlive the HTTP server (hijacked connections): end them
		// so each flushes its last segment to the spool.
		srv.Close()
		return err
	})
	return g.Wait()
}

// stubControl grants every stream a fresh session and accepts every report.
type stubControl struct{}

func (stubControl) Authorize(context.Context, string) (recording.Grant, error) {
	return recording.Grant{SessionID: uuid.NewString(), ChannelID: uuid.NewString(), Quality: "high"}, nil
}
func (stubControl) Started(context.Context, string) error                          { return nil }
func (stubControl) Segment(context.Context, string, recording.SegmentReport) error { return nil }
func (stubControl) Stopped(context.Context, string) error                          { return nil }

type discardUploader struct{}

func (discardUploader) PutFile(context.Context, string, string, string, map[string]string) error {
	return nil
}

// startWorker runs a media worker in this process until the test ends and
// returns its config with the address it listens on.
func startWorker(tb testing.TB, cfg workerConfig, objects *objectstore.Client) workerConfig {
	tb.Helper()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	ex := newExit()
	go func() { ex.set(runWorker(ctx, cfg, objects, ln)) }()
	tb.Cleanup(func() {
		cancel()
		<-ex.done
		if ex.err != nil {
			tb.Errorf("media worker: %v", ex.err)
		}
	})
	waitHealthy(tb, cfg.Addr, ex)
	return cfg
}

// exit reports how something running in the background ended.
type exit struct {
	done chan struct{}
	err  error // valid once done is closed
}

func newExit() *exit { return &exit{done: make(chan struct{})} }

func (e *exit) set(err error) {
	e.err = err
	close(e.done)
}

func waitHealthy(tb testing.TB, addr string, ex *exit) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ex.done:
			tb.Fatalf("media worker at %s exited before it was ready: %v", addr, ex.err)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("media worker at %s not ready: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// workerProcess is a media worker in a child process: the test binary
// re-executed with envWorkerChild.
type workerProcess struct {
	cmd *exec.Cmd
	ex  *exit
	log string // its stdout and stderr
}

// startWorkerProcess starts a media worker child and waits until it serves.
// It is killed when the test ends, if still running.
func startWorkerProcess(tb testing.TB, cfg workerConfig) *workerProcess {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	logf, err := os.CreateTemp(tb.TempDir(), "media-worker-*.log")
	if err != nil {
		tb.Fatal(err)
	}
	p := &workerProcess{cmd: exec.Command(exe, "-test.run=^$"), ex: newExit(), log: logf.Name()}
	p.cmd.Env = append(os.Environ(), envWorkerChild+"="+string(b))
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	setParentDeathSignal(p.cmd)
	// The parent-death signal fires when the thread that forked the child
	// exits: fork from a locked thread that lives as long as the child.
	// Unlock once the child is gone: a goroutine that ends locked takes its
	// thread down, and with it any other child that thread forked earlier
	// (the S3 server, whose parent-death signal would then fire).
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer logf.Close()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.ex.set(p.cmd.Wait())
	}()
	if err := <-started; err != nil {
		tb.Fatalf("start media worker: %v", err)
	}
	tb.Cleanup(func() {
		p.kill()
		if tb.Failed() || os.Getenv("VMS_E2E_LOG") != "" {
			b, _ := os.ReadFile(p.log)
			tb.Logf("media worker %d log:\n%s", p.pid(), tail(string(b), 8<<10))
		}
	})
	waitHealthy(tb, cfg.Addr, p.ex)
	return p
}

// kill ends the worker with SIGKILL, as a crash or the OOM killer would,
// and waits for it to be gone.
func (p *workerProcess) kill() {
	select {
	case <-p.ex.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.ex.done
}

// stop ends the worker with SIGTERM (it flushes its streams) and waits.
func (p *workerProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.ex.done:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

func (p *workerProcess) pid() int { return p.cmd.Process.Pid }

// workerChildMain is the media worker child: it runs until SIGTERM (or
// SIGKILL) and returns the exit code.
func workerChildMain(raw string) int {
	var cfg workerConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		slog.Error("media worker child: bad config", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var objects *objectstore.Client
	if !cfg.DiscardUploads {
		var err error
		if objects, err = objectstore.New(ctx, cfg.S3); err != nil {
			slog.Error("media worker child", "err", err)
			return 1
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		slog.Error("media worker child", "err", err)
		return 1
	}
	if err := runWorker(ctx, cfg, objects, ln); err != nil {
		slog.Error("media worker child", "err", err)
		return 1
	}
	return 0
}

// s3Server is an embedded S3 server of this test's own, which it can stop
// and start again on the same address and folder (an outage).
type s3Server struct {
	tb  testing.TB
	srv objectstore.ServerConfig
	emb *objectstore.Embedded
	cfg objectstore.Config
}

func startS3(tb testing.TB) (*s3Server, *objectstore.Client) {
	tb.Helper()
	s := &s3Server{tb: tb, srv: objectstore.ServerConfig{
		Dir: tb.TempDir(), Addr: "127.0.0.1:0", AccessKey: "e2e-access", SecretKey: "e2e-secret-key",
	}}
	s.start()
	s.srv.Addr = strings.TrimPrefix(s.emb.Endpoint(), "http://")
	tb.Cleanup(s.stop)
	s.cfg = objectstore.Config{Endpoint: s.emb.Endpoint(), Bucket: "e2e", AccessKey: s.srv.AccessKey,
		SecretKey: s.srv.SecretKey, PathStyle: true}
	objects, err := objectstore.New(context.Background(), s.cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := objects.EnsureBucket(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s, objects
}

func (s *s3Server) start() {
	s.tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		s.tb.Fatal(err)
	}
	s.emb, err = objectstore.StartEmbedded(context.Background(), []string{exe, "-test.run=^$"}, s.srv)
	if err != nil {
		s.tb.Fatalf("embedded S3: %v", err)
	}
}

func (s *s3Server) stop() {
	if s.emb != nil {
		if err := s.emb.Stop(); err != nil {
			s.tb.Logf("stop embedded S3: %v", err)
		}
		s.emb = nil
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

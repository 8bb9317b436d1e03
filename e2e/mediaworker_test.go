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
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/recording"
)

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

// nvrCapacity is the capacity a test's media worker registers its NVR with.
const nvrCapacity = 1000

func (c workerConfig) url() string      { return "ws://" + c.Addr + "/v1/ingest" }
func (c workerConfig) spoolDir() string { return filepath.Join(c.DataDir, "spool", "ready") }

// runWorker registers the worker as an NVR instance, then serves ingest on
// ln, drains the spool and heartbeats its NVR until ctx ends, as
// runMediaWorker does.
func runWorker(ctx context.Context, cfg workerConfig, objects *objectstore.Client, ln net.Listener) error {
	var control mediaworker.ControlPlane = stubControl{}
	var api *mediaworker.APIClient
	if !cfg.StubControl {
		api = &mediaworker.APIClient{API: &apiclient.Client{BaseURL: cfg.APIURL, Key: cfg.WorkerKey}, Worker: cfg.Name}
		if err := api.Register(ctx, cfg.Name, cfg.url(), nvrCapacity); err != nil {
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
		g.Go(func() error {
			// The NVR stays alive to the control plane while the worker runs.
			if err := api.KeepRegistered(ctx, cfg.Name, cfg.url(), nvrCapacity, recording.NVRHeartbeat); !errors.Is(err, context.Canceled) {
				return err
			}
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
	waitHealthy(tb, cfg.Addr, ex.done, func() error { return ex.err })
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

// waitHealthy waits until the media worker at addr answers /healthz; done
// closes if it exits first, with err telling how.
func waitHealthy(tb testing.TB, addr string, done <-chan struct{}, exitErr func() error) {
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
		case <-done:
			tb.Fatalf("media worker at %s exited before it was ready: %v", addr, exitErr())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("media worker at %s not ready: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startWorkerProcess starts a media worker in a child process and waits
// until it serves.
func startWorkerProcess(tb testing.TB, cfg workerConfig) *childProcess {
	tb.Helper()
	p := startChild(tb, envWorkerChild, cfg)
	waitHealthy(tb, cfg.Addr, p.proc.Done(), p.proc.Err)
	return p
}

// workerChildMain is the media worker child: it runs until SIGTERM (or
// SIGKILL) and returns the exit code.
func workerChildMain(raw string) int {
	var cfg workerConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		slog.Error("media worker child: bad config", "err", err)
		return 2
	}
	ctx, stop := childContext()
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

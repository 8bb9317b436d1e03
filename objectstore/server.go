package objectstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/opennvr/vms/childproc"
	"github.com/versity/versitygw/auth"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
)

// Environment variables that carry a ServerConfig to the child process.
const (
	EnvDir       = "VMS_S3_DIR"
	EnvAddr      = "VMS_S3_ADDR"
	EnvRegion    = "VMS_S3_REGION"
	EnvAccessKey = "VMS_S3_ACCESS_KEY"
	EnvSecretKey = "VMS_S3_SECRET_KEY"
	// EnvEventWebhook is the URL the server POSTs bucket events to.
	EnvEventWebhook = "VMS_S3_EVENT_WEBHOOK"
	// EnvChild is set to "1" in the child's environment so that a binary
	// re-executing itself (a test binary, see s3test.Main) knows to serve.
	EnvChild = "VMS_S3_CHILD"
)

const (
	// healthPath answers unauthenticated GETs; "_" cannot start a bucket
	// name, so it masks no bucket.
	healthPath   = "/_health"
	startTimeout = 20 * time.Second
	stopGrace    = 5 * time.Second
	stderrTail   = 8 << 10
)

// ServerConfig configures the embedded S3 server.
type ServerConfig struct {
	Dir       string // objects in Dir/data; Dir/meta holds metadata where xattrs are unsupported
	Addr      string // host:port to listen on; StartEmbedded picks a free port for port 0
	Region    string // default "us-east-1"
	AccessKey string
	SecretKey string
	// EventWebhookURL, if set, receives every bucket's events (object
	// created, removed, ...) as S3 event notification JSON, POSTed one
	// request per event. versitygw sends them to this one global sink: no
	// bucket notification configuration is needed (nor supported). The
	// server checks the URL with a test event when it starts, so the
	// receiver must already listen.
	EventWebhookURL string
}

// ServerConfigFromEnv reads the config StartEmbedded passed to the child.
func ServerConfigFromEnv() ServerConfig {
	return ServerConfig{
		Dir:             os.Getenv(EnvDir),
		Addr:            os.Getenv(EnvAddr),
		Region:          os.Getenv(EnvRegion),
		AccessKey:       os.Getenv(EnvAccessKey),
		SecretKey:       os.Getenv(EnvSecretKey),
		EventWebhookURL: os.Getenv(EnvEventWebhook),
	}
}

func (cfg ServerConfig) env() []string {
	return []string{
		EnvChild + "=1",
		EnvDir + "=" + cfg.Dir,
		EnvAddr + "=" + cfg.Addr,
		EnvRegion + "=" + cfg.Region,
		EnvAccessKey + "=" + cfg.AccessKey,
		EnvSecretKey + "=" + cfg.SecretKey,
		EnvEventWebhook + "=" + cfg.EventWebhookURL,
	}
}

func (cfg ServerConfig) validate() error {
	switch {
	case cfg.Dir == "":
		return errors.New("objectstore: server dir is required")
	case cfg.Addr == "":
		return errors.New("objectstore: server addr is required")
	case cfg.AccessKey == "" || cfg.SecretKey == "":
		return errors.New("objectstore: server access and secret key are required")
	}
	return nil
}

// Serve runs the S3 gateway in this process until ctx is done. The gateway
// changes the process's working directory and only one may run per
// process, so everything but a dedicated child process (the hidden
// `vms objectstore` subcommand) should use StartEmbedded instead.
func Serve(ctx context.Context, cfg ServerConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	dataDir, err := filepath.Abs(filepath.Join(cfg.Dir, "data"))
	if err != nil {
		return fmt.Errorf("objectstore: server dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("objectstore: create data dir: %w", err)
	}

	var (
		store meta.MetadataStorer = meta.XattrMeta{}
		opts  posix.PosixOpts
	)
	// Content types and ETags live in user xattrs. Filesystems without them
	// (some tmpfs, overlay and network mounts) need a sidecar tree; once one
	// exists keep using it, or a moved store would lose its metadata.
	metaDir := filepath.Join(filepath.Dir(dataDir), "meta")
	if _, err := os.Stat(metaDir); err == nil || !xattrSupported(dataDir) {
		if err := os.MkdirAll(metaDir, 0o755); err != nil {
			return fmt.Errorf("objectstore: create metadata dir: %w", err)
		}
		sc, err := meta.NewSideCar(metaDir)
		if err != nil {
			return fmt.Errorf("objectstore: sidecar metadata: %w", err)
		}
		store, opts.SideCarDir = sc, metaDir
		slog.Info("objectstore: using sidecar metadata", "dir", metaDir)
	}
	be, err := posix.New(dataDir, store, opts)
	if err != nil {
		return fmt.Errorf("objectstore: posix backend: %w", err)
	}

	slog.Info("objectstore: serving S3", "addr", cfg.Addr, "dir", dataDir)
	err = embedgw.RunVersityGW(ctx, be, &embedgw.Config{
		RootUserAccess:    cfg.AccessKey,
		RootUserSecret:    cfg.SecretKey,
		Region:            cfg.Region,
		Ports:             []string{cfg.Addr},
		MaxConnections:    1024,
		MaxRequests:       1024,
		MultipartMaxParts: 10000,
		HealthPath:        healthPath,
		Quiet:             true,
		EventWebhookURL:   cfg.EventWebhookURL,
		IAMService: auth.NewIAMServiceSingle(auth.Account{
			Access: cfg.AccessKey,
			Secret: cfg.SecretKey,
			Role:   auth.RoleAdmin,
		}),
	})
	if err != nil {
		return fmt.Errorf("objectstore: s3 gateway: %w", err)
	}
	return nil
}

// Embedded is a running S3 server child process.
type Embedded struct {
	proc     *childproc.Process
	endpoint string
	stderr   *tailBuffer
	stopOnce sync.Once
	stopErr  error
}

// StartEmbedded runs argv (e.g. {"/path/to/vms", "objectstore"}) as a child
// process that calls Serve with cfg, passed through the VMS_S3_* environment
// variables, and waits until it answers HTTP. ctx bounds only the start;
// call Stop to end the child. The child also gets SIGTERM when this process
// dies (Linux; see childproc). Port 0 in Addr means a free port; an empty Addr means
// 127.0.0.1:0. An Addr already in use is an error.
func StartEmbedded(ctx context.Context, argv []string, cfg ServerConfig) (*Embedded, error) {
	if len(argv) == 0 {
		return nil, errors.New("objectstore: empty argv")
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	addr, err := checkAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	cfg.Addr = addr
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	e := &Embedded{
		endpoint: endpointFor(cfg.Addr),
		stderr:   &tailBuffer{max: stderrTail},
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), cfg.env()...)
	// The child's logs go to our stderr; the tail also explains a failed start.
	cmd.Stdout = os.Stderr
	cmd.Stderr = io.MultiWriter(os.Stderr, e.stderr)
	if e.proc, err = childproc.Start(cmd, syscall.SIGTERM); err != nil {
		return nil, fmt.Errorf("objectstore: start embedded server: %w", err)
	}

	if err := e.waitReady(ctx); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// waitReady polls the health endpoint until it answers 200, the child dies,
// or the start times out.
func (e *Embedded) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.endpoint+healthPath, nil)
		if err != nil {
			return fmt.Errorf("objectstore: health request: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-e.proc.Done():
			return fmt.Errorf("objectstore: embedded server exited before it was ready (%v): %s",
				e.proc.Err(), e.stderr.String())
		case <-ctx.Done():
			return fmt.Errorf("objectstore: embedded server not ready at %s: %w; stderr: %s",
				e.endpoint, ctx.Err(), e.stderr.String())
		case <-tick.C:
		}
	}
}

// Endpoint is the server's base URL, e.g. http://127.0.0.1:9000.
func (e *Embedded) Endpoint() string { return e.endpoint }

// Pid is the child's process id.
func (e *Embedded) Pid() int { return e.proc.Pid() }

// Stop sends SIGTERM, waits, and kills the child if it has not exited after
// a few seconds. It returns an error if the child exited uncleanly.
func (e *Embedded) Stop() error {
	e.stopOnce.Do(func() {
		if e.proc.Stop(stopGrace) {
			e.stopErr = fmt.Errorf("objectstore: embedded server ignored SIGTERM for %s, killed", stopGrace)
		} else if err := e.proc.Err(); err != nil {
			e.stopErr = fmt.Errorf("objectstore: embedded server: %w: %s", err, e.stderr.String())
		}
	})
	return e.stopErr
}

// checkAddr binds addr once to fail early if it is taken (a server already
// there would pass the readiness check) and to turn port 0 into a free port.
// The port is not reserved: if another process takes it before the child
// binds, the child fails to start and StartEmbedded reports it.
func checkAddr(addr string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("objectstore: server addr %q: %w", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("objectstore: server addr: %w", err)
	}
	defer l.Close()
	return net.JoinHostPort(host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

// endpointFor turns a listen address into a URL a local client can dial.
func endpointFor(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - b.max; extra > 0 {
		b.buf.Next(extra)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

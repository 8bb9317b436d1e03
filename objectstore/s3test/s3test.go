// Package s3test gives tests a real S3 server: the embedded versitygw
// gateway, run as a child process re-executed from the test binary itself.
//
// Use it from a test package's TestMain:
//
//	func TestMain(m *testing.M) { s3test.Main(m) }
//
//	func TestUpload(t *testing.T) {
//		client, cfg := s3test.Start(t)
//		...
//	}
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/opennvr/vms/objectstore"
)

const (
	region    = "us-east-1"
	accessKey = "s3test-access"
	secretKey = "s3test-secret"
)

// server is the one gateway a test binary shares across its tests. It is
// package state because Start has no other handle on it; Main stops it.
var server struct {
	once sync.Once
	dir  string
	emb  *objectstore.Embedded
	err  error
}

// Main runs the embedded S3 server if this process is the child Start
// spawned, and otherwise runs the tests, then stops the server. It does not
// return.
func Main(m *testing.M) {
	if os.Getenv(objectstore.EnvChild) == "1" {
		os.Exit(serveChild())
	}
	code := m.Run()
	if server.emb != nil {
		if err := server.emb.Stop(); err != nil {
			slog.Warn("s3test: stop embedded S3", "err", err)
		}
	}
	if server.dir != "" {
		os.RemoveAll(server.dir)
	}
	os.Exit(code)
}

func serveChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := objectstore.Serve(ctx, objectstore.ServerConfigFromEnv()); err != nil {
		slog.Error("s3test: embedded S3", "err", err)
		return 1
	}
	return 0
}

// Start returns a client for a fresh, empty bucket on the test binary's
// embedded S3 server (started on first use) and the config that reaches
// it. The bucket is removed when the test ends.
func Start(t testing.TB) (*objectstore.Client, objectstore.Config) {
	t.Helper()
	if os.Getenv(objectstore.EnvChild) == "1" {
		t.Fatal("s3test: running tests inside the S3 child; call s3test.Main from TestMain")
	}
	server.once.Do(startServer)
	if server.err != nil {
		t.Fatalf("s3test: %v (does this package's TestMain call s3test.Main?)", server.err)
	}

	cfg := objectstore.Config{
		Endpoint:  server.emb.Endpoint(),
		Region:    region,
		Bucket:    bucketName(t.Name()),
		AccessKey: accessKey,
		SecretKey: secretKey,
		PathStyle: true,
	}
	client, err := objectstore.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	if err := client.EnsureBucket(t.Context()); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(func() {
		// The posix backend keeps a bucket as a directory (plus its sidecar
		// metadata, if any); removing those is cheaper than deleting each
		// object over HTTP.
		os.RemoveAll(filepath.Join(server.dir, "data", cfg.Bucket))
		os.RemoveAll(filepath.Join(server.dir, "meta", cfg.Bucket))
	})
	return client, cfg
}

func startServer() {
	server.dir, server.err = os.MkdirTemp("", "vms-s3test-")
	if server.err != nil {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		server.err = err
		return
	}
	// -test.run=^$ keeps a child whose TestMain forgot s3test.Main from
	// running the tests (and starting children of its own).
	server.emb, server.err = objectstore.StartEmbedded(context.Background(),
		[]string{exe, "-test.run=^$"},
		objectstore.ServerConfig{
			Dir:       server.dir,
			Addr:      "127.0.0.1:0",
			Region:    region,
			AccessKey: accessKey,
			SecretKey: secretKey,
		})
}

// bucketName derives a unique, valid bucket name from a test name, so a
// leftover bucket on disk says which test made it.
func bucketName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = strings.TrimRight(name[:40], "-")
	}
	suffix := make([]byte, 6)
	rand.Read(suffix)
	return fmt.Sprintf("t-%s-%s", name, hex.EncodeToString(suffix))
}

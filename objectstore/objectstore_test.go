package objectstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
)

func TestMain(m *testing.M) { s3test.Main(m) }

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func readAll(t testing.TB, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

func put(t testing.TB, c *objectstore.Client, key string, data []byte, contentType string) {
	t.Helper()
	if err := c.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), contentType); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func TestObjectLifecycle(t *testing.T) {
	c, _ := s3test.Start(t)
	ctx := t.Context()
	data := []byte("\xff\xd8\xff\xe0 fake jpeg payload")
	put(t, c, "cam1/snap.jpg", data, "image/jpeg")

	info, err := c.Head(ctx, "cam1/snap.jpg")
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if info.Key != "cam1/snap.jpg" || info.Size != int64(len(data)) || info.ContentType != "image/jpeg" {
		t.Errorf("Head = %+v, want key cam1/snap.jpg size %d type image/jpeg", info, len(data))
	}
	if d := time.Since(info.LastModified); d < -time.Minute || d > time.Minute {
		t.Errorf("LastModified = %v, want about now", info.LastModified)
	}

	body, info, err := c.Get(ctx, "cam1/snap.jpg")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got := readAll(t, body); !bytes.Equal(got, data) {
		t.Errorf("Get body = %q, want %q", got, data)
	}
	if info.Size != int64(len(data)) || info.ContentType != "image/jpeg" {
		t.Errorf("Get info = %+v", info)
	}

	ranges := []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"magic number", 0, 3, data[:3]},
		{"middle", 4, 4, data[4:8]},
		{"to end", 10, 0, data[10:]},
		{"past end clamps", 10, 1000, data[10:]},
	}
	for _, tt := range ranges {
		t.Run("GetRange "+tt.name, func(t *testing.T) {
			rc, err := c.GetRange(ctx, "cam1/snap.jpg", tt.offset, tt.length)
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", tt.offset, tt.length, err)
			}
			if got := readAll(t, rc); !bytes.Equal(got, tt.want) {
				t.Errorf("GetRange(%d, %d) = %q, want %q", tt.offset, tt.length, got, tt.want)
			}
		})
	}

	if err := c.Delete(ctx, "cam1/snap.jpg"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := c.Head(ctx, "cam1/snap.jpg"); !errors.Is(err, objectstore.ErrNotFound) {
		t.Errorf("Head after Delete: err = %v, want ErrNotFound", err)
	}
	if err := c.Delete(ctx, "cam1/snap.jpg"); err != nil {
		t.Errorf("Delete of a missing object: %v, want nil", err)
	}
}

func TestNotFound(t *testing.T) {
	c, _ := s3test.Start(t)
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
	}{
		{"Head", func() error { _, err := c.Head(ctx, "missing"); return err }},
		{"Get", func() error { _, _, err := c.Get(ctx, "missing"); return err }},
		{"GetRange", func() error { _, err := c.GetRange(ctx, "missing", 0, 4); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, objectstore.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestPutUnseekableBody(t *testing.T) {
	c, _ := s3test.Start(t)
	data := randomBytes(t, 1<<20)
	// io.MultiReader hides bytes.Reader's Seek, as a pipe or socket would.
	body := io.MultiReader(bytes.NewReader(data))
	if err := c.Put(t.Context(), "stream.bin", body, int64(len(data)), ""); err != nil {
		t.Fatalf("Put: %v", err)
	}
	rc, _, err := c.Get(t.Context(), "stream.bin")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got := readAll(t, rc); !bytes.Equal(got, data) {
		t.Errorf("Get returned %d bytes that differ from the %d put", len(got), len(data))
	}
}

func TestEnsureBucketIdempotent(t *testing.T) {
	c, _ := s3test.Start(t) // Start already called EnsureBucket once.
	for range 2 {
		if err := c.EnsureBucket(t.Context()); err != nil {
			t.Fatalf("EnsureBucket: %v", err)
		}
	}
}

func TestMultipartWriter(t *testing.T) {
	c, _ := s3test.Start(t)
	tests := []struct {
		name  string
		size  int
		chunk int // bytes per Write call
	}{
		{"empty", 0, 1},
		{"smaller than a part", 1000, 333},
		{"exactly one part", objectstore.PartSize, 1 << 20},
		{"several parts", 2*objectstore.PartSize + 12345, 1<<20 + 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			data := randomBytes(t, tt.size)
			key := "clips/" + strings.ReplaceAll(tt.name, " ", "-") + ".mp4"
			w, err := c.NewMultipartWriter(ctx, key, "video/mp4")
			if err != nil {
				t.Fatalf("NewMultipartWriter: %v", err)
			}
			for rest := data; len(rest) > 0; {
				n := min(tt.chunk, len(rest))
				if _, err := w.Write(rest[:n]); err != nil {
					t.Fatalf("Write: %v", err)
				}
				rest = rest[n:]
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			rc, info, err := c.Get(ctx, key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got := readAll(t, rc); !bytes.Equal(got, data) {
				t.Errorf("Get returned %d bytes that differ from the %d written", len(got), len(data))
			}
			if info.ContentType != "video/mp4" {
				t.Errorf("ContentType = %q, want video/mp4", info.ContentType)
			}
		})
	}
}

func TestMultipartWriterAbort(t *testing.T) {
	c, _ := s3test.Start(t)
	ctx := t.Context()
	w, err := c.NewMultipartWriter(ctx, "aborted.mp4", "video/mp4")
	if err != nil {
		t.Fatalf("NewMultipartWriter: %v", err)
	}
	if _, err := w.Write(randomBytes(t, objectstore.PartSize+1)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Abort succeeded, want error")
	}
	if _, err := c.Head(ctx, "aborted.mp4"); !errors.Is(err, objectstore.ErrNotFound) {
		t.Errorf("Head after Abort: err = %v, want ErrNotFound", err)
	}
}

// tamper flips the first hex digit of a presigned URL's signature.
func tamper(t testing.TB, url string) string {
	t.Helper()
	const param = "X-Amz-Signature="
	i := strings.Index(url, param)
	if i < 0 {
		t.Fatalf("no %s in %s", param, url)
	}
	i += len(param)
	flipped := "0"
	if url[i] == '0' {
		flipped = "1"
	}
	return url[:i] + flipped + url[i+1:]
}

func TestPresignGet(t *testing.T) {
	c, _ := s3test.Start(t)
	data := []byte("snapshot bytes")
	put(t, c, "snap.jpg", data, "image/jpeg")

	tests := []struct {
		name       string
		expiry     time.Duration
		wait       time.Duration
		tamper     bool
		wantStatus int
	}{
		{"valid", time.Minute, 0, false, http.StatusOK},
		{"tampered signature", time.Minute, 0, true, http.StatusForbidden},
		{"expired", time.Second, 2 * time.Second, false, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, err := c.PresignGet(context.Background(), "snap.jpg", tt.expiry)
			if err != nil {
				t.Fatalf("PresignGet: %v", err)
			}
			if tt.tamper {
				url = tamper(t, url)
			}
			time.Sleep(tt.wait)
			status, body := s3test.Presigned(t, http.MethodGet, url, "", nil)
			if status != tt.wantStatus {
				t.Fatalf("GET status = %d, want %d; body: %s", status, tt.wantStatus, body)
			}
			if status == http.StatusOK && !bytes.Equal(body, data) {
				t.Errorf("GET body = %q, want %q", body, data)
			}
		})
	}
}

func TestPresignPut(t *testing.T) {
	c, _ := s3test.Start(t)
	data := randomBytes(t, 4096)

	tests := []struct {
		name        string
		signedType  string // content type passed to PresignPut
		sentType    string // Content-Type header the uploader sends
		tamper      bool
		wantSuccess bool
	}{
		{"signed content type", "image/jpeg", "image/jpeg", false, true},
		{"no content type", "", "", false, true},
		{"tampered signature", "image/jpeg", "image/jpeg", true, false},
		{"different content type", "image/jpeg", "text/html", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "uploads/" + strings.ReplaceAll(tt.name, " ", "-")
			url, err := c.PresignPut(t.Context(), key, tt.signedType, time.Minute)
			if err != nil {
				t.Fatalf("PresignPut: %v", err)
			}
			if tt.tamper {
				url = tamper(t, url)
			}
			status, body := s3test.Presigned(t, http.MethodPut, url, tt.sentType, data)
			info, headErr := c.Head(t.Context(), key)
			if !tt.wantSuccess {
				if status < 400 || status > 499 {
					t.Errorf("PUT status = %d, want 4xx; body: %s", status, body)
				}
				if !errors.Is(headErr, objectstore.ErrNotFound) {
					t.Errorf("Head after rejected PUT: err = %v, want ErrNotFound", headErr)
				}
				return
			}
			if status != http.StatusOK {
				t.Fatalf("PUT status = %d, want 200; body: %s", status, body)
			}
			if headErr != nil {
				t.Fatalf("Head after PUT: %v", headErr)
			}
			if info.Size != int64(len(data)) || tt.sentType != "" && info.ContentType != tt.sentType {
				t.Errorf("Head = %+v, want size %d type %q", info, len(data), tt.sentType)
			}
		})
	}
}

func TestWrongSecretKey(t *testing.T) {
	c, cfg := s3test.Start(t)
	put(t, c, "secret.jpg", []byte("x"), "")

	cfg.SecretKey = "not-the-secret"
	bad, err := objectstore.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		name string
		call func(context.Context) error
	}{
		{"Put", func(ctx context.Context) error {
			return bad.Put(ctx, "evil.jpg", strings.NewReader("x"), 1, "")
		}},
		{"Get", func(ctx context.Context) error { _, _, err := bad.Get(ctx, "secret.jpg"); return err }},
		{"Delete", func(ctx context.Context) error { return bad.Delete(ctx, "secret.jpg") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(t.Context())
			var respErr *awshttp.ResponseError
			if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != http.StatusForbidden {
				t.Errorf("err = %v, want an HTTP 403 response error", err)
			}
		})
	}
	if _, err := c.Head(t.Context(), "secret.jpg"); err != nil {
		t.Errorf("object gone after rejected Delete: %v", err)
	}
}

func TestDeletePrefixOlderThan(t *testing.T) {
	keys := []string{"rec/cam1/a.mp4", "rec/cam1/b.mp4", "rec/cam2/a.mp4", "snap/cam1/a.jpg"}
	now := time.Now()
	tests := []struct {
		name        string
		prefix      string
		before      time.Time
		wantDeleted []string
	}{
		{"before in the past deletes nothing", "rec/", now.Add(-time.Hour), nil},
		{"prefix limits deletion", "rec/cam1/", now.Add(time.Hour), []string{"rec/cam1/a.mp4", "rec/cam1/b.mp4"}},
		{"empty prefix deletes all old objects", "", now.Add(time.Hour), keys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := s3test.Start(t)
			for _, k := range keys {
				put(t, c, k, []byte(k), "")
			}
			n, err := c.DeletePrefixOlderThan(t.Context(), tt.prefix, tt.before)
			if err != nil {
				t.Fatalf("DeletePrefixOlderThan: %v", err)
			}
			if n != len(tt.wantDeleted) {
				t.Errorf("deleted %d objects, want %d", n, len(tt.wantDeleted))
			}
			for _, k := range keys {
				_, err := c.Head(t.Context(), k)
				gone := errors.Is(err, objectstore.ErrNotFound)
				if want := slices.Contains(tt.wantDeleted, k); gone != want {
					t.Errorf("%s: deleted = %v, want %v (Head err %v)", k, gone, want, err)
				}
			}
		})
	}
}

func TestDeletePrefixOlderThanManyPages(t *testing.T) {
	c, _ := s3test.Start(t)
	const n = 1100 // more than one 1000-key list page and delete batch
	for i := range n {
		put(t, c, fmt.Sprintf("old/%04d", i), nil, "")
	}
	got, err := c.DeletePrefixOlderThan(t.Context(), "old/", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("DeletePrefixOlderThan: %v", err)
	}
	if got != n {
		t.Errorf("deleted %d, want %d", got, n)
	}
}

func TestStartEmbeddedFailures(t *testing.T) {
	_, cfg := s3test.Start(t)
	busyAddr := strings.TrimPrefix(cfg.Endpoint, "http://")
	tests := []struct {
		name    string
		argv    []string
		addr    string
		wantErr string
	}{
		{"child dies", []string{"/bin/sh", "-c", "echo boom >&2; exit 3"}, "127.0.0.1:0", "boom"},
		{"address in use", []string{"/bin/true"}, busyAddr, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := objectstore.StartEmbedded(t.Context(), tt.argv, objectstore.ServerConfig{
				Dir: t.TempDir(), Addr: tt.addr, AccessKey: "a", SecretKey: "s",
			})
			if err == nil {
				e.Stop()
				t.Fatal("StartEmbedded succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestEmbeddedMetadataStore(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		sidecar bool // pre-create Dir/meta, which forces sidecar metadata
	}{
		{"xattr", false},
		{"sidecar", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			metaDir := filepath.Join(dir, "meta")
			if tt.sidecar {
				if err := os.Mkdir(metaDir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			srv := objectstore.ServerConfig{Dir: dir, Addr: "127.0.0.1:0", AccessKey: "ak", SecretKey: "sk"}
			e, err := objectstore.StartEmbedded(t.Context(), []string{exe, "-test.run=^$"}, srv)
			if err != nil {
				t.Fatalf("StartEmbedded: %v", err)
			}
			c, err := objectstore.New(t.Context(), objectstore.Config{
				Endpoint: e.Endpoint(), Bucket: "meta-test", AccessKey: "ak", SecretKey: "sk", PathStyle: true,
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if err := c.EnsureBucket(t.Context()); err != nil {
				t.Fatalf("EnsureBucket: %v", err)
			}
			put(t, c, "a/snap.jpg", []byte("jpeg"), "image/jpeg")
			info, err := c.Head(t.Context(), "a/snap.jpg")
			if err != nil || info.ContentType != "image/jpeg" {
				t.Errorf("Head = %+v, %v; want content type image/jpeg", info, err)
			}
			if err := e.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}

			_, err = os.Stat(filepath.Join(metaDir, "meta-test", "a", "snap.jpg"))
			if gotSidecar := err == nil; gotSidecar != tt.sidecar {
				t.Errorf("sidecar metadata for the object present = %v, want %v", gotSidecar, tt.sidecar)
			}
			if _, err := os.Stat(filepath.Join(dir, "data", "meta-test", "a", "snap.jpg")); err != nil {
				t.Errorf("object file: %v", err)
			}
		})
	}
}

func TestPutWithMetadata(t *testing.T) {
	c, cfg := s3test.Start(t)
	ctx := t.Context()
	if c.Bucket() != cfg.Bucket {
		t.Fatalf("Bucket() = %q, want %q", c.Bucket(), cfg.Bucket)
	}
	data := randomBytes(t, 1000)
	md := map[string]string{"vms-segment-end": "2025-06-01T12:00:30.04Z", "vms-segment-codec": "h264"}
	// Not seekable, like a stream: the unsigned-payload path must carry
	// the metadata too.
	for _, body := range []io.Reader{bytes.NewReader(data), io.MultiReader(bytes.NewReader(data))} {
		err := c.PutWithOptions(ctx, "seg.mp4", body, int64(len(data)),
			objectstore.PutOptions{ContentType: "video/mp4", Metadata: md})
		if err != nil {
			t.Fatalf("PutWithOptions: %v", err)
		}
		info, err := c.Head(ctx, "seg.mp4")
		if err != nil {
			t.Fatalf("Head: %v", err)
		}
		if info.ContentType != "video/mp4" || len(info.Metadata) != len(md) || info.ETag == "" || strings.Contains(info.ETag, `"`) {
			t.Errorf("Head = %+v, want video/mp4, metadata %v and an unquoted ETag", info, md)
		}
		for k, v := range md {
			if info.Metadata[k] != v {
				t.Errorf("metadata %s = %q, want %q", k, info.Metadata[k], v)
			}
		}
		rc, got, err := c.Get(ctx, "seg.mp4")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		rc.Close()
		if got.ETag != info.ETag || got.Metadata["vms-segment-codec"] != "h264" {
			t.Errorf("Get info = %+v, want the Head's ETag and metadata", got)
		}
	}
	// Put leaves no metadata.
	put(t, c, "plain.mp4", data, "video/mp4")
	if info, err := c.Head(ctx, "plain.mp4"); err != nil || len(info.Metadata) != 0 {
		t.Errorf("Head(plain) = %+v, %v; want no metadata", info, err)
	}
}

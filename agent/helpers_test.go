package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/opennvr/vms/media"
)

const demoSample = "../testdata/demo.h264"

// syncBuffer is a bytes.Buffer safe for concurrent slog handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captureLogger returns a debug-level logger writing into a buffer, so
// tests can check what would have been logged.
func captureLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// collected is what a Source delivered in one run.
type collected struct {
	tracks [][]media.Track
	frames []media.Frame
	err    error
}

// collect runs src until it delivered n frames, failed, or timeout passed.
func collect(t *testing.T, src Source, n int, timeout time.Duration) collected {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got collected
	errEnough := errors.New("enough frames")
	got.err = src.Run(ctx,
		func(tr []media.Track) error {
			got.tracks = append(got.tracks, tr)
			return nil
		},
		func(f media.Frame) error {
			if len(got.tracks) == 0 {
				t.Errorf("frame before tracks")
			}
			got.frames = append(got.frames, f)
			if len(got.frames) >= n {
				return errEnough
			}
			return nil
		})
	if errors.Is(got.err, errEnough) {
		got.err = nil
	}
	return got
}

// peakCounter counts what is in progress and the most that was at once.
type peakCounter struct {
	mu        sync.Mutex
	now, most int
}

func (c *peakCounter) enter() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now++
	c.most = max(c.most, c.now)
}

func (c *peakCounter) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now--
}

func (c *peakCounter) peak() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.most
}

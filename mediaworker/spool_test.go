package mediaworker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
)

// waitTimeout bounds every wait for something the worker does in the
// background; reaching it means the worker is stuck, not slow.
const waitTimeout = 30 * time.Second

// fakeControl is the control plane as the media worker sees it: it grants
// the tokens it issued, refuses others with a 401 and records every call.
// The real API is covered by the end-to-end tests.
type fakeControl struct {
	// authorizeErr, when set, fails every Authorize (a control plane outage).
	authorizeErr error
	// segmentErr, when set, answers the attempt'th (0-based) Segment call for
	// a key; nil lets the call succeed.
	segmentErr func(key string, attempt int) error

	mu       sync.Mutex
	grants   map[string]recording.Grant
	calls    []string                             // "<method> <arg>" in call order
	attempts map[string]int                       // Segment calls per key
	reports  map[string][]recording.SegmentReport // accepted, per session
	changed  chan struct{}
}

func newFakeControl() *fakeControl {
	return &fakeControl{
		grants:   make(map[string]recording.Grant),
		attempts: make(map[string]int),
		reports:  make(map[string][]recording.SegmentReport),
		changed:  make(chan struct{}, 1),
	}
}

// grant issues token for a new session on a new channel.
func (c *fakeControl) grant(token string) recording.Grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := recording.Grant{SessionID: uuid.NewString(), ChannelID: uuid.NewString(), Quality: "main"}
	c.grants[token] = g
	return g
}

// setGrant makes token answer with g.
func (c *fakeControl) setGrant(token string, g recording.Grant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.grants[token] = g
}

func (c *fakeControl) record(call string) {
	c.calls = append(c.calls, call)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *fakeControl) Authorize(_ context.Context, token string) (recording.Grant, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record("authorize " + token)
	if c.authorizeErr != nil {
		return recording.Grant{}, c.authorizeErr
	}
	g, ok := c.grants[token]
	if !ok {
		return recording.Grant{}, &apiclient.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "unknown stream token"}
	}
	return g, nil
}

func (c *fakeControl) Started(_ context.Context, sessionID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record("started " + sessionID)
	return nil
}

func (c *fakeControl) Segment(_ context.Context, sessionID string, r recording.SegmentReport) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	attempt := c.attempts[r.Key]
	c.attempts[r.Key]++
	c.record("segment " + r.Key)
	if c.segmentErr != nil {
		if err := c.segmentErr(r.Key, attempt); err != nil {
			return err
		}
	}
	c.reports[sessionID] = append(c.reports[sessionID], r)
	return nil
}

func (c *fakeControl) Stopped(_ context.Context, sessionID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record("stopped " + sessionID)
	return nil
}

// count returns how many times call ("started <session>", ...) was made.
func (c *fakeControl) count(call string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, got := range c.calls {
		if got == call {
			n++
		}
	}
	return n
}

// callLog returns every call so far, in order.
func (c *fakeControl) callLog() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// callIndex is the position of call's first occurrence, -1 if none.
func (c *fakeControl) callIndex(call string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Index(c.calls, call)
}

// segmentAttempts is how many times the segment at key was reported.
func (c *fakeControl) segmentAttempts(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attempts[key]
}

// accepted returns the session's accepted segment reports, oldest first.
func (c *fakeControl) accepted(sessionID string) []recording.SegmentReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := slices.Clone(c.reports[sessionID])
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start.Before(rs[j].Start) })
	return rs
}

// waitFor waits until cond, evaluated on the recorded calls, holds.
func (c *fakeControl) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-c.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; control plane calls: %q", what, c.callLog())
		}
	}
}

// countingUploader wraps the real uploader: it fails the first failFirst
// attempts for every key, as an S3 outage would, and counts what it does.
type countingUploader struct {
	next      mediaworker.Uploader
	failFirst int

	mu       sync.Mutex
	attempts map[string]int
	uploads  map[string]int
}

func newCountingUploader(next mediaworker.Uploader, failFirst int) *countingUploader {
	return &countingUploader{next: next, failFirst: failFirst, attempts: make(map[string]int), uploads: make(map[string]int)}
}

func (u *countingUploader) PutFile(ctx context.Context, key, path, contentType string, metadata map[string]string) error {
	u.mu.Lock()
	u.attempts[key]++
	fail := u.attempts[key] <= u.failFirst
	u.mu.Unlock()
	if fail {
		return errors.New("s3: connection refused")
	}
	if err := u.next.PutFile(ctx, key, path, contentType, metadata); err != nil {
		return err
	}
	u.mu.Lock()
	u.uploads[key]++
	u.mu.Unlock()
	return nil
}

func (u *countingUploader) counts(key string) (attempts, uploads int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.attempts[key], u.uploads[key]
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newSpool(t *testing.T, dir string, up mediaworker.Uploader, control mediaworker.ControlPlane) *mediaworker.Spool {
	return &mediaworker.Spool{
		Dir: dir, Uploader: up, Control: control, Logger: testLogger(t),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
}

// runSpool runs sp until the returned stop is called or the test ends.
func runSpool(t *testing.T, sp *mediaworker.Spool) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("spool Run = %v, want context.Canceled", err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("spool Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func drain(t *testing.T, sp *mediaworker.Spool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := sp.Drain(ctx); err != nil {
		t.Fatalf("spool Drain: %v", err)
	}
}

// spoolFile is one segment handed to a spool.
type spoolFile struct {
	session string
	report  recording.SegmentReport
	data    []byte
}

// addSegments spools n fake segment files of one session, 30 s apart.
func addSegments(t *testing.T, sp *mediaworker.Spool, n int) []spoolFile {
	t.Helper()
	session, channel := uuid.New(), uuid.New()
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var out []spoolFile
	for i := range n {
		data := fmt.Appendf(nil, "segment %d of %s", i, session)
		path := filepath.Join(t.TempDir(), "seg.mp4")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := start.Add(time.Duration(i) * 30 * time.Second)
		r := recording.SegmentReport{
			Key: recording.RecordingKey(channel, session, s), Start: s, End: s.Add(30 * time.Second),
			DurationMS: 30000, Size: int64(len(data)), Codec: "h264",
		}
		if err := sp.Add(path, session.String(), channel.String(), r); err != nil {
			t.Fatalf("spool Add: %v", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("spool Add left the source file in place (stat: %v)", err)
		}
		out = append(out, spoolFile{session: session.String(), report: r, data: data})
	}
	return out
}

func assertObject(t *testing.T, objects *objectstore.Client, key string, want []byte) {
	t.Helper()
	rc, info, err := objects.Get(t.Context(), key)
	if err != nil {
		t.Errorf("object %s: %v", key, err)
		return
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Errorf("read object %s: %v", key, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("object %s = %q, want %q", key, got, want)
	}
	if info.ContentType != "video/mp4" {
		t.Errorf("object %s content type = %q, want video/mp4", key, info.ContentType)
	}
}

// assertDirEntries checks that dir holds exactly the named files.
func assertDirEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

func TestSpoolDelivers(t *testing.T) {
	transient := []error{
		&apiclient.Error{Status: http.StatusServiceUnavailable},
		&apiclient.Error{Status: http.StatusTooManyRequests},
		&apiclient.Error{Status: http.StatusRequestTimeout},
		errors.New("api: connection refused"),
	}
	tests := []struct {
		name          string
		failUploads   int
		segmentErrs   []error // answers to the first Segment calls for each key
		wantAttempts  int     // Segment calls per key
		wantRecording bool    // the control plane recorded the segment
	}{
		{name: "first try", wantAttempts: 1, wantRecording: true},
		{name: "upload fails then succeeds", failUploads: 3, wantAttempts: 1, wantRecording: true},
		{name: "report fails transiently", segmentErrs: transient, wantAttempts: len(transient) + 1, wantRecording: true},
		{name: "upload and report fail", failUploads: 2, segmentErrs: transient[:1], wantAttempts: 2, wantRecording: true},
		{name: "report refused", segmentErrs: []error{&apiclient.Error{Status: http.StatusNotFound, Code: "not_found"}}, wantAttempts: 1},
		{name: "report invalid", segmentErrs: []error{&apiclient.Error{Status: http.StatusBadRequest, Code: "invalid"}}, wantAttempts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objects, _ := s3test.Start(t)
			control := newFakeControl()
			control.segmentErr = func(_ string, attempt int) error {
				if attempt < len(tc.segmentErrs) {
					return tc.segmentErrs[attempt]
				}
				return nil
			}
			up := newCountingUploader(mediaworker.ObjectUploader{Objects: objects}, tc.failUploads)
			dir := t.TempDir()
			sp := newSpool(t, dir, up, control)
			runSpool(t, sp)

			segs := addSegments(t, sp, 3)
			drain(t, sp)

			for _, s := range segs {
				key := s.report.Key
				if attempts, uploads := up.counts(key); attempts != tc.failUploads+1 || uploads != 1 {
					t.Errorf("%s: %d upload attempts, %d uploads; want %d, 1", key, attempts, uploads, tc.failUploads+1)
				}
				assertObject(t, objects, key, s.data)
				if n := control.segmentAttempts(key); n != tc.wantAttempts {
					t.Errorf("%s: reported %d times, want %d", key, n, tc.wantAttempts)
				}
			}
			var want []recording.SegmentReport
			if tc.wantRecording {
				for _, s := range segs {
					want = append(want, s.report)
				}
			}
			if got := control.accepted(segs[0].session); !slices.Equal(got, want) {
				t.Errorf("control plane recorded %+v, want %+v", got, want)
			}
			assertDirEntries(t, dir)
		})
	}
}

// A segment spooled before Run starts (a stream that ended while the spool
// was starting up) is delivered once, not also picked up as a leftover.
func TestSpoolAddBeforeRun(t *testing.T) {
	objects, _ := s3test.Start(t)
	control := newFakeControl()
	up := newCountingUploader(mediaworker.ObjectUploader{Objects: objects}, 0)
	dir := t.TempDir()
	sp := newSpool(t, dir, up, control)

	segs := addSegments(t, sp, 3)
	runSpool(t, sp)
	drain(t, sp)

	for _, s := range segs {
		if attempts, uploads := up.counts(s.report.Key); attempts != 1 || uploads != 1 {
			t.Errorf("%s: %d upload attempts, %d uploads; want 1, 1", s.report.Key, attempts, uploads)
		}
		if n := control.segmentAttempts(s.report.Key); n != 1 {
			t.Errorf("%s: reported %d times, want 1", s.report.Key, n)
		}
	}
	if got := control.accepted(segs[0].session); len(got) != len(segs) {
		t.Errorf("control plane recorded %d segments, want %d", len(got), len(segs))
	}
	assertDirEntries(t, dir)
}

// Segments a previous process spooled but never delivered are delivered by
// the next one.
func TestSpoolResumesPreviousRun(t *testing.T) {
	objects, _ := s3test.Start(t)
	dir := t.TempDir()

	// The previous process spooled three segments and died before its
	// spool ran; it also left a metadata file nobody can read.
	previous := newSpool(t, dir, nil, nil)
	segs := addSegments(t, previous, 3)
	if err := os.WriteFile(filepath.Join(dir, "garbage.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}

	control := newFakeControl()
	up := newCountingUploader(mediaworker.ObjectUploader{Objects: objects}, 0)
	sp := newSpool(t, dir, up, control)
	runSpool(t, sp)
	session := segs[0].session
	control.waitFor(t, "3 recovered segments", func() bool { return len(control.accepted(session)) == len(segs) })
	drain(t, sp)

	for _, s := range segs {
		if attempts, uploads := up.counts(s.report.Key); attempts != 1 || uploads != 1 {
			t.Errorf("%s: %d upload attempts, %d uploads; want 1, 1", s.report.Key, attempts, uploads)
		}
		assertObject(t, objects, s.report.Key, s.data)
	}
	var want []recording.SegmentReport
	for _, s := range segs {
		want = append(want, s.report)
	}
	if got := control.accepted(session); !slices.Equal(got, want) {
		t.Errorf("control plane recorded %+v, want %+v", got, want)
	}
	// The unreadable metadata is left for an operator, not deleted.
	assertDirEntries(t, dir, "garbage.json")
}

// A segment uploaded by a previous process that died before the control
// plane took the report is only reported by the next one.
func TestSpoolResumesUploadedSegment(t *testing.T) {
	objects, _ := s3test.Start(t)
	dir := t.TempDir()

	// First process: the upload works, the control plane is down.
	down := newFakeControl()
	down.segmentErr = func(string, int) error { return &apiclient.Error{Status: http.StatusBadGateway} }
	firstUp := newCountingUploader(mediaworker.ObjectUploader{Objects: objects}, 0)
	first := newSpool(t, dir, firstUp, down)
	stopFirst := runSpool(t, first)
	segs := addSegments(t, first, 2)
	down.waitFor(t, "report attempts", func() bool {
		return down.segmentAttempts(segs[0].report.Key) > 0 && down.segmentAttempts(segs[1].report.Key) > 0
	})
	stopFirst()
	for _, s := range segs {
		if _, uploads := firstUp.counts(s.report.Key); uploads != 1 {
			t.Fatalf("%s: first process uploaded %d times, want 1", s.report.Key, uploads)
		}
	}

	// Second process: reports without uploading again.
	control := newFakeControl()
	up := newCountingUploader(mediaworker.ObjectUploader{Objects: objects}, 0)
	sp := newSpool(t, dir, up, control)
	runSpool(t, sp)
	session := segs[0].session
	control.waitFor(t, "2 recovered segments", func() bool { return len(control.accepted(session)) == len(segs) })
	drain(t, sp)

	for _, s := range segs {
		if attempts, _ := up.counts(s.report.Key); attempts != 0 {
			t.Errorf("%s: uploaded again (%d attempts)", s.report.Key, attempts)
		}
		if n := control.segmentAttempts(s.report.Key); n != 1 {
			t.Errorf("%s: reported %d times, want 1", s.report.Key, n)
		}
		assertObject(t, objects, s.report.Key, s.data)
	}
	assertDirEntries(t, dir)
}

// A spooled segment whose file is gone (deleted by hand, lost with a disk)
// is dropped instead of retried forever.
func TestSpoolDropsSegmentWithoutFile(t *testing.T) {
	objects, _ := s3test.Start(t)
	dir := t.TempDir()
	previous := newSpool(t, dir, nil, nil)
	segs := addSegments(t, previous, 2)
	files, err := filepath.Glob(filepath.Join(dir, "*.mp4"))
	if err != nil || len(files) != 2 {
		t.Fatalf("spool holds %q (%v), want 2 segment files", files, err)
	}
	lost := files[0]
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}

	control := newFakeControl()
	up := newCountingUploader(mediaworker.ObjectUploader{Objects: objects}, 0)
	sp := newSpool(t, dir, up, control)
	runSpool(t, sp)
	drain(t, sp)

	got := control.accepted(segs[0].session)
	if len(got) != 1 {
		t.Fatalf("control plane recorded %+v, want the one segment whose file survived", got)
	}
	for _, s := range segs {
		attempts, uploads := up.counts(s.report.Key)
		if s.report.Key == got[0].Key {
			if attempts != 1 || uploads != 1 {
				t.Errorf("%s: %d upload attempts, %d uploads; want 1, 1", s.report.Key, attempts, uploads)
			}
			assertObject(t, objects, s.report.Key, s.data)
		} else if uploads != 0 || control.segmentAttempts(s.report.Key) != 0 {
			t.Errorf("%s: lost segment uploaded %d times, reported %d times", s.report.Key, uploads, control.segmentAttempts(s.report.Key))
		}
	}
	assertDirEntries(t, dir)
}

package workflows_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
	"github.com/opennvr/vms/workflows/recordingtest"
)

func TestMain(m *testing.M) { s3test.Main(m) }

// t0 is the test environment's start time: times have milliseconds on
// purpose, the store keeps them.
var t0 = time.Date(2025, 6, 2, 10, 0, 0, 250_000_000, time.UTC)

// world is one account with a channel on an NVR, in a fresh SQLite store,
// with a fresh bucket on the embedded S3.
type world struct {
	st      *store.Store
	objects *objectstore.Client
	acts    *activities.Activities
	acct    *store.Account
	ch      *store.Channel
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	return newWorldOn(tb, storetest.Open(tb, "sqlite"))
}

// newWorldOn builds the world in st.
func newWorldOn(tb testing.TB, st *store.Store) *world {
	tb.Helper()
	ctx := context.Background()
	acct, err := st.CreateAccount(ctx, "acme", false)
	if err != nil {
		tb.Fatal(err)
	}
	cam := &store.Camera{AccountID: acct.ID, Name: "door", Protocol: store.ProtocolRTSP, Host: "127.0.0.1", Port: 554, StreamHigh: "/main"}
	if err := st.CreateCamera(ctx, cam); err != nil {
		tb.Fatal(err)
	}
	nvr := &store.NVR{Name: "nvr-" + uuid.NewString()[:8], MediaURL: "ws://127.0.0.1:8082", Capacity: 100}
	if err := st.CreateNVR(ctx, nvr); err != nil {
		tb.Fatal(err)
	}
	ch := &store.Channel{AccountID: acct.ID, CameraID: cam.ID, NVRID: nvr.ID, RetentionDays: 7}
	if err := st.CreateChannel(ctx, ch); err != nil {
		tb.Fatal(err)
	}
	objects, _ := s3test.Start(tb)
	return &world{st: st, objects: objects, acts: &activities.Activities{Store: st, Objects: objects}, acct: acct, ch: ch}
}

// segment is a recording of the world's channel from start for d.
func (w *world) segment(sessionID uuid.UUID, start time.Time, d time.Duration) recording.SegmentReport {
	return recording.SegmentReport{
		Key: recording.RecordingKey(w.ch.ID, sessionID, start), Start: start, End: start.Add(d),
		DurationMS: d.Milliseconds(), Size: 1 << 20, Codec: "avc1.64001f",
	}
}

// upload puts a real segment of the report's length at its key, as the
// media worker does before it reports a segment, and returns the report
// with the segment's size and codec.
func (w *world) upload(tb testing.TB, rep recording.SegmentReport) recording.SegmentReport {
	tb.Helper()
	seg := recordingtest.Put(tb, w.objects, rep.Key, rep.End.Sub(rep.Start))
	rep.Size, rep.Codec = int64(len(seg.Data)), seg.Codec
	return rep
}

// addRecordings records n back-to-back real segments of length d from
// start: objects and rows.
func (w *world) addRecordings(tb testing.TB, start time.Time, n int, d time.Duration) []*store.Recording {
	tb.Helper()
	return recordingtest.Add(tb, w.st, w.objects, w.ch.ID, start, n, d)
}

// removeObjects deletes the recordings' objects (as retention or an
// operator might), leaving their rows.
func (w *world) removeObjects(tb testing.TB, recs []*store.Recording) {
	tb.Helper()
	for _, r := range recs {
		if err := w.objects.Delete(context.Background(), r.Key); err != nil {
			tb.Fatal(err)
		}
	}
}

// assertAssembled checks a finished clip points at its assembled MP4 and
// that the object is there.
func (w *world) assertAssembled(tb testing.TB, c *store.Clip) {
	tb.Helper()
	if want := recording.ClipKey(c.ChannelID, c.ID); c.ObjectKey != want {
		tb.Errorf("clip object key = %q, want %q", c.ObjectKey, want)
		return
	}
	info, err := w.objects.Head(context.Background(), c.ObjectKey)
	if err != nil {
		tb.Errorf("assembled clip %s: %v", c.ObjectKey, err)
		return
	}
	if info.Size == 0 {
		tb.Errorf("assembled clip %s is empty", c.ObjectKey)
	}
}

func (w *world) newClip(tb testing.TB, start, end time.Time) *store.Clip {
	tb.Helper()
	c := &store.Clip{AccountID: w.acct.ID, ChannelID: w.ch.ID, Start: start, End: end}
	if err := w.st.CreateClip(context.Background(), c); err != nil {
		tb.Fatal(err)
	}
	return c
}

func (w *world) clipInput(c *store.Clip, grace time.Duration) contract.ClipInput {
	return contract.ClipInput{ClipID: c.ID.String(), ChannelID: c.ChannelID.String(), Start: c.Start, End: c.End, Grace: grace}
}

func (w *world) clip(tb testing.TB, id uuid.UUID) *store.Clip {
	tb.Helper()
	c, err := w.st.ClipByID(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func (w *world) newSnapshot(tb testing.TB, source string) *store.Snapshot {
	tb.Helper()
	sn := &store.Snapshot{AccountID: w.acct.ID, ChannelID: w.ch.ID, Source: source}
	if err := w.st.CreateSnapshot(context.Background(), sn); err != nil {
		tb.Fatal(err)
	}
	return sn
}

func (w *world) snapshot(tb testing.TB, id uuid.UUID) *store.Snapshot {
	tb.Helper()
	sn, err := w.st.SnapshotByID(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return sn
}

func (w *world) countRecordings(tb testing.TB) int {
	tb.Helper()
	n, err := w.st.DB.NewSelect().Model((*store.Recording)(nil)).Where("channel_id = ?", w.ch.ID).Count(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return int(n)
}

// newEnv is a test workflow environment, starting at t0, with every
// workflow and the world's activities registered.
func newEnv(tb testing.TB, w *world) *testsuite.TestWorkflowEnvironment {
	tb.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(quietLogger())
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.SetTestTimeout(30 * time.Second)
	workflows.Register(env, w.acts)
	return env
}

// quietLogger drops the SDK's logs (activity failures the tests cause on
// purpose are logged as errors); VMS_TEST_LOG=1 shows them.
func quietLogger() tlog.Logger {
	level := slog.LevelError + 1
	if os.Getenv("VMS_TEST_LOG") == "1" {
		level = slog.LevelDebug
	}
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
}

// signals is a Temporal client that only records SignalWorkflow calls, for
// activities that signal clip workflows. Ids in gone answer NotFound, as a
// finished workflow does.
type signals struct {
	client.Client // nil: any other call panics
	mu            sync.Mutex
	sent          []sentSignal
	gone          map[string]bool
}

type sentSignal struct {
	WorkflowID, Name string
	Arg              any
}

func (s *signals) SignalWorkflow(_ context.Context, workflowID, _ string, name string, arg any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone[workflowID] {
		return serviceerror.NewNotFound("workflow execution already completed")
	}
	s.sent = append(s.sent, sentSignal{workflowID, name, arg})
	return nil
}

func (s *signals) to(workflowID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sig := range s.sent {
		if sig.WorkflowID == workflowID {
			n++
		}
	}
	return n
}

// jpeg and png are the smallest byte strings the snapshot check accepts.
var (
	jpeg = append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, bytes.Repeat([]byte{1}, 60)...)
	png  = append([]byte{0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A}, bytes.Repeat([]byte{2}, 60)...)
)

func put(tb testing.TB, objects *objectstore.Client, key string, data []byte) {
	tb.Helper()
	if err := objects.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), ""); err != nil {
		tb.Fatal(err)
	}
}

// appErrType is the application error type inside err, or "".
func appErrType(err error) string {
	var appErr interface{ Type() string }
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }

func fmtTimes(ts []time.Time) string { return fmt.Sprint(ts) }

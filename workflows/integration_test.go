package workflows_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/temporaltest"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

// cluster is a world served by a real worker on the test binary's dev
// server, with the embedded S3.
type cluster struct {
	*world
	c  client.Client
	tq string
}

func newCluster(tb testing.TB) *cluster {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs the Temporal dev server")
	}
	return newClusterOn(tb, newWorld(tb))
}

func newClusterOn(tb testing.TB, w *world) *cluster {
	tb.Helper()
	c, _ := temporaltest.Start(tb)
	w.acts.Temporal = c
	tq := temporaltest.WorkerWithOptions(tb, c, benchWorkerOptions(), func(r worker.Registry) { workflows.Register(r, w.acts) })
	return &cluster{world: w, c: c, tq: tq}
}

// startClip starts a clip's workflow the way the API does.
func (cl *cluster) startClip(tb testing.TB, clip *store.Clip, grace time.Duration) client.WorkflowRun {
	tb.Helper()
	run, err := cl.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID:        contract.ClipWorkflowID(clip.ID.String()),
		TaskQueue: cl.tq,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.ChannelIDKey.ValueSet(clip.ChannelID.String()),
			contract.ClipStatusKey.ValueSet(contract.ClipInProgress),
		),
	}, workflows.ClipWorkflow, cl.clipInput(clip, grace))
	if err != nil {
		tb.Fatalf("start clip workflow: %v", err)
	}
	return run
}

// authorize runs the authorize update-with-start the way the API does.
func (cl *cluster) authorize(ctx context.Context, sessionID uuid.UUID, segmentLength time.Duration) (recording.Grant, error) {
	return cl.authorizeStream(ctx, contract.StreamInput{
		SessionID: sessionID.String(), ChannelID: cl.ch.ID.String(), Quality: "high", SegmentLength: segmentLength,
	})
}

// authorizeStream runs the authorize update-with-start of a stream.
func (cl *cluster) authorizeStream(ctx context.Context, in contract.StreamInput) (recording.Grant, error) {
	start := cl.c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       contract.StreamWorkflowID(in.SessionID),
		TaskQueue:                cl.tq,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes:    temporal.NewSearchAttributes(contract.ChannelIDKey.ValueSet(in.ChannelID)),
	}, workflows.StreamSessionWorkflow, in)
	handle, err := cl.c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   contract.UpdateAuthorize,
			Args:         []any{contract.AuthorizeRequest{Worker: "nvr-1"}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	var grant recording.Grant
	if err == nil {
		err = handle.Get(ctx, &grant)
	}
	return grant, err
}

func (cl *cluster) signalStream(tb testing.TB, sessionID uuid.UUID, name string, arg any) {
	tb.Helper()
	if err := cl.c.SignalWorkflow(context.Background(), contract.StreamWorkflowID(sessionID.String()), "", name, arg); err != nil {
		tb.Fatalf("signal %s: %v", name, err)
	}
}

func (cl *cluster) clipProgress(tb testing.TB, clipID uuid.UUID) contract.ClipProgress {
	tb.Helper()
	v, err := cl.c.QueryWorkflow(context.Background(), contract.ClipWorkflowID(clipID.String()), "", contract.QueryProgress)
	if err != nil {
		tb.Fatalf("query progress: %v", err)
	}
	var p contract.ClipProgress
	if err := v.Get(&p); err != nil {
		tb.Fatal(err)
	}
	return p
}

// waitRun waits for a workflow run to complete successfully.
func waitRun(tb testing.TB, run client.WorkflowRun, within time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := run.Get(ctx, nil); err != nil {
		tb.Fatalf("workflow %s: %v", run.GetID(), err)
	}
}

// listed waits until a visibility query lists the workflow.
func (cl *cluster) listed(tb testing.TB, query, workflowID string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := cl.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			tb.Fatalf("list %q: %v", query, err)
		}
		for _, e := range resp.Executions {
			if e.Execution.WorkflowId == workflowID {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("query %q does not list %s", query, workflowID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recordHistory writes a run's history to testdata/<name>.json (the format
// of `temporal workflow show --output json`) when VMS_RECORD_HISTORY=1, for
// the replay test. An existing file is kept: it was recorded by the code of
// its time, which is what the replay test must prove compatibility with. A
// scenario whose command sequence changed is recorded under a new name.
func (cl *cluster) recordHistory(tb testing.TB, name string, run client.WorkflowRun) {
	tb.Helper()
	if os.Getenv("VMS_RECORD_HISTORY") != "1" {
		return
	}
	path := filepath.Join("testdata", name+".json")
	if _, err := os.Stat(path); err == nil {
		tb.Logf("%s exists: kept (recorded by earlier code)", path)
		return
	}
	iter := cl.c.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			tb.Fatalf("history of %s: %v", run.GetID(), err)
		}
		h.Events = append(h.Events, e)
	}
	compact, err := protojson.Marshal(&h)
	if err != nil {
		tb.Fatal(err)
	}
	// protojson's own indentation varies on purpose; encoding/json's is stable.
	var b bytes.Buffer
	if err := json.Indent(&b, compact, "", "  "); err != nil {
		tb.Fatal(err)
	}
	b.WriteByte('\n')
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("recorded %s (%d events)", path, len(h.Events))
}

// A clip over a past hour of 120 recordings is assembled into one MP4 and
// finishes, and the Temporal UI can list it by status and channel.
func TestIntegrationClipPastRange(t *testing.T) {
	cl := newCluster(t)
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	cl.addRecordings(t, start, 120, 30*time.Second)
	clip := cl.newClip(t, start, start.Add(time.Hour))
	run := cl.startClip(t, clip, 2*time.Minute)
	waitRun(t, run, time.Minute)

	got := cl.clip(t, clip.ID)
	if got.Status != contract.ClipFinished || got.Progress != 1 {
		t.Errorf("clip = %s progress %v, want finished 1", got.Status, got.Progress)
	}
	cl.assertAssembled(t, got)
	if p := cl.clipProgress(t, clip.ID); p.Status != contract.ClipFinished || p.CoveredSeconds != 3600 || p.Segments != 120 {
		t.Errorf("progress = %+v, want finished, 3600 s, 120 segments", p)
	}
	cl.listed(t, fmt.Sprintf("%s = '%s' AND %s = '%s'", contract.ClipStatusKey.GetName(), contract.ClipFinished,
		contract.ChannelIDKey.GetName(), clip.ChannelID), run.GetID())
	// clip-past-range.json is the same scenario before assembly existed.
	cl.recordHistory(t, "clip-assembled", run)

	// Nothing recorded: failed at once, with the reason.
	empty := cl.newClip(t, start.Add(-24*time.Hour), start.Add(-23*time.Hour))
	run = cl.startClip(t, empty, 2*time.Minute)
	waitRun(t, run, 30*time.Second)
	if got := cl.clip(t, empty.ID); got.Status != contract.ClipFailed || got.Error != "no recordings in range" {
		t.Errorf("empty clip = %s %q, want failed: no recordings in range", got.Status, got.Error)
	}
	cl.listed(t, fmt.Sprintf("%s = '%s'", contract.ClipStatusKey.GetName(), contract.ClipFailed), run.GetID())

	// Recorded, but every object is gone: failed at assembly, with the reason.
	gone := cl.addRecordings(t, start.Add(-time.Hour), 4, 30*time.Second)
	cl.removeObjects(t, gone)
	noMedia := cl.newClip(t, start.Add(-time.Hour), start.Add(-time.Hour+2*time.Minute))
	run = cl.startClip(t, noMedia, 2*time.Minute)
	waitRun(t, run, 30*time.Second)
	if got := cl.clip(t, noMedia.ID); got.Status != contract.ClipFailed || !strings.HasPrefix(got.Error, "the recordings could not be assembled: ") || got.ObjectKey != "" {
		t.Errorf("clip without objects = %s %q %q, want failed: the recordings could not be assembled", got.Status, got.Error, got.ObjectKey)
	}
	cl.recordHistory(t, "clip-no-media", run)
}

// The whole chain: a clip reaching into the future waits (listed in
// progress); the stream session records segments and notifies it; it
// finishes on the segment that reaches its end.
func TestIntegrationClipFollowsStream(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	clip := cl.newClip(t, now.Add(-10*time.Second), now.Add(20*time.Second))
	clipRun := cl.startClip(t, clip, time.Minute)
	cl.listed(t, fmt.Sprintf("%s = '%s'", contract.ClipStatusKey.GetName(), contract.ClipInProgress), clipRun.GetID())

	session := uuid.New()
	grant, err := cl.authorize(ctx, session, 15*time.Second)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	if grant.SessionID != session.String() || grant.SegmentSeconds != 15 {
		t.Errorf("grant = %+v", grant)
	}
	cl.signalStream(t, session, contract.SignalStarted, nil)
	first := cl.upload(t, cl.segment(session, now.Add(-10*time.Second), 15*time.Second))
	cl.signalStream(t, session, contract.SignalSegment, first)
	deadline := time.Now().Add(10 * time.Second)
	for p := cl.clipProgress(t, clip.ID); p.CoveredSeconds != 15; p = cl.clipProgress(t, clip.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("progress after the first segment = %+v, want 15 s covered", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cl.signalStream(t, session, contract.SignalSegment, first) // re-delivered: no effect
	cl.signalStream(t, session, contract.SignalSegment, cl.upload(t, cl.segment(session, now.Add(5*time.Second), 15*time.Second)))
	waitRun(t, clipRun, 20*time.Second)

	got := cl.clip(t, clip.ID)
	if got.Status != contract.ClipFinished || got.Progress != 1 {
		t.Errorf("clip = %s progress %v, want finished 1", got.Status, got.Progress)
	}
	cl.assertAssembled(t, got)
	if n := cl.countRecordings(t); n != 2 {
		t.Errorf("%d recordings, want 2", n)
	}
	cl.signalStream(t, session, contract.SignalStopped, nil)
	streamRun := cl.c.GetWorkflow(ctx, contract.StreamWorkflowID(session.String()), "")
	waitRun(t, streamRun, 20*time.Second)
	ss, err := cl.st.SessionByID(ctx, session)
	if err != nil || ss.Status != contract.SessionEnded {
		t.Errorf("session = %+v, %v; want ended", ss, err)
	}
	// clip-future-segments.json is the same scenario before assembly existed.
	cl.recordHistory(t, "clip-future-segments-assembled", clipRun)
	cl.recordHistory(t, "stream-session", streamRun)
}

// A clip whose stream never comes fails at its deadline (range end + grace).
func TestIntegrationClipDeadline(t *testing.T) {
	cl := newCluster(t)
	now := time.Now()
	clip := cl.newClip(t, now, now.Add(time.Second))
	run := cl.startClip(t, clip, time.Second)
	waitRun(t, run, 20*time.Second)
	if got := cl.clip(t, clip.ID); got.Status != contract.ClipFailed || got.Error != "no stream for the whole deadline" {
		t.Errorf("clip = %s %q, want failed: no stream for the whole deadline", got.Status, got.Error)
	}
	if d := time.Since(now); d < 2*time.Second {
		t.Errorf("failed after %s, before the deadline", d)
	}
	cl.recordHistory(t, "clip-deadline", run)
}

// A token is single use: a second authorize is refused while the session
// runs, and after it ended the session cannot start again.
func TestIntegrationAuthorizeOnce(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	session := uuid.New()
	if _, err := cl.authorize(ctx, session, 30*time.Second); err != nil {
		t.Fatalf("first authorize: %v", err)
	}
	_, err := cl.authorize(ctx, session, 30*time.Second)
	if !activities.HasErrorType(err, workflows.ErrTokenUsed) {
		t.Fatalf("second authorize = %v, want %s", err, workflows.ErrTokenUsed)
	}
	cl.signalStream(t, session, contract.SignalStopped, nil)
	waitRun(t, cl.c.GetWorkflow(ctx, contract.StreamWorkflowID(session.String()), ""), 20*time.Second)
	_, err = cl.authorize(ctx, session, 30*time.Second)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &started) {
		t.Errorf("authorize after the session ended = %v, want already started", err)
	}

	// An inactive channel is refused.
	if _, err := cl.st.DB.NewUpdate().Model((*store.Channel)(nil)).Set("status = ?", store.ChannelDisabled).
		Where("id = ?", cl.ch.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = cl.authorize(ctx, uuid.New(), 30*time.Second)
	if !activities.HasErrorType(err, activities.ErrChannelInactive) {
		t.Errorf("authorize on a disabled channel = %v, want %s", err, activities.ErrChannelInactive)
	}
}

// The client snapshot path end to end: update-with-start hands out a
// presigned PUT, a plain HTTP client uploads to the embedded S3, complete
// has it checked.
func TestIntegrationSnapshotClientUpload(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	sn := cl.newSnapshot(t, contract.SnapshotClient)
	start := cl.c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       contract.SnapshotWorkflowID(sn.ID.String()),
		TaskQueue:                cl.tq,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.ChannelIDKey.ValueSet(cl.ch.ID.String()),
			contract.SnapshotStatusKey.ValueSet(contract.SnapshotPending),
		),
	}, workflows.SnapshotWorkflow, contract.SnapshotInput{
		SnapshotID: sn.ID.String(), ChannelID: cl.ch.ID.String(), Source: contract.SnapshotClient, Key: sn.Key, URLExpiry: time.Minute,
	})
	handle, err := cl.c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions:          client.UpdateWorkflowOptions{UpdateName: contract.UpdateUploadURL, WaitForStage: client.WorkflowUpdateStageCompleted},
	})
	var url string
	if err == nil {
		err = handle.Get(ctx, &url)
	}
	if err != nil {
		t.Fatalf("upload URL: %v", err)
	}
	s3test.Upload(t, url, "image/jpeg", jpeg)
	if err := cl.c.SignalWorkflow(ctx, contract.SnapshotWorkflowID(sn.ID.String()), "", contract.SignalComplete, nil); err != nil {
		t.Fatal(err)
	}
	run, err := start.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, run, 20*time.Second)
	if got := cl.snapshot(t, sn.ID); got.Status != contract.SnapshotReady || got.ContentType != "image/jpeg" || got.Size != int64(len(jpeg)) {
		t.Errorf("snapshot = %s %q %d, want ready image/jpeg %d", got.Status, got.ContentType, got.Size, len(jpeg))
	}
	cl.listed(t, fmt.Sprintf("%s = '%s'", contract.SnapshotStatusKey.GetName(), contract.SnapshotReady), run.GetID())
	cl.recordHistory(t, "snapshot-ready", run)
}

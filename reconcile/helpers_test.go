package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/reconcile"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows/recordingtest"
)

func TestMain(m *testing.M) { s3test.Main(m) }

// t0 has a sub-millisecond part on purpose: rows keep milliseconds.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 400_300_000, time.UTC)

// segLen is the length of the test segments (a multiple of the demo
// stream's 40 ms frames).
const segLen = 4 * time.Second

// world is a channel in a SQLite store with a bucket on the embedded S3
// server, and a reconciler over them.
type world struct {
	st       *store.Store
	objects  *objectstore.Client
	acts     *activities.Activities
	recorder *countingRecorder
	channel  uuid.UUID
	rec      *reconcile.Reconciler
}

func newWorld(t *testing.T, objects *objectstore.Client) *world {
	t.Helper()
	return newWorldOn(t, "sqlite", objects)
}

// newWorldOn is newWorld on a database of the given kind (storetest.Kinds).
func newWorldOn(t *testing.T, kind string, objects *objectstore.Client) *world {
	t.Helper()
	ctx := t.Context()
	st := storetest.Open(t, kind)
	acct, err := st.CreateAccount(ctx, "acme", false)
	if err != nil {
		t.Fatal(err)
	}
	cam := &store.Camera{AccountID: acct.ID, Name: "door", Protocol: store.ProtocolRTSP,
		Host: "127.0.0.1", Port: 554, StreamHigh: "/main"}
	if err := st.CreateCamera(ctx, cam); err != nil {
		t.Fatal(err)
	}
	nvr := &store.NVR{Name: "nvr-1", MediaURL: "ws://127.0.0.1:1/v1/ingest", Capacity: 10}
	if err := st.CreateNVR(ctx, nvr); err != nil {
		t.Fatal(err)
	}
	ch := &store.Channel{AccountID: acct.ID, CameraID: cam.ID, NVRID: nvr.ID, RetentionDays: 7}
	if err := st.CreateChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	// No Temporal client: no clip waits in these tests, so recording a
	// segment signals no one.
	acts := &activities.Activities{Store: st, Objects: objects}
	recorder := &countingRecorder{next: acts}
	return &world{
		st: st, objects: objects, acts: acts, recorder: recorder, channel: ch.ID,
		rec: &reconcile.Reconciler{
			Store: st, Objects: objects, Recorder: recorder, Bucket: objects.Bucket(),
			RetryDelay: 10 * time.Millisecond, Logger: testLogger(t),
		},
	}
}

// segment is a segment object as the media worker uploads it.
type segment struct {
	session uuid.UUID
	report  recording.SegmentReport
}

// newSegment describes a segment of the world's channel starting at start.
func (w *world) newSegment(start time.Time) segment {
	session := uuid.New()
	return segment{session: session, report: recording.SegmentReport{
		Key:   recording.RecordingKey(w.channel, session, start),
		Start: start, End: start.Add(segLen), DurationMS: segLen.Milliseconds(), Codec: "h264",
	}}
}

// upload stores a real fMP4 segment under the segment's key the way the
// media worker does (mediaworker.ObjectUploader, with the report as metadata),
// or, withMeta false, as a bare object like one uploaded before segments
// carried metadata. It returns the report with the object's size.
func (w *world) upload(t *testing.T, seg *segment, withMeta bool) {
	t.Helper()
	data := recordingtest.Cut(t, segLen).Data
	seg.report.Size = int64(len(data))
	if !withMeta {
		if err := w.objects.Put(t.Context(), seg.report.Key, bytes.NewReader(data), seg.report.Size, "video/mp4"); err != nil {
			t.Fatal(err)
		}
		return
	}
	path := filepath.Join(t.TempDir(), "segment.mp4")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	up := mediaworker.ObjectUploader{Objects: w.objects}
	if err := up.PutFile(t.Context(), seg.report.Key, path, "video/mp4", seg.report.Metadata()); err != nil {
		t.Fatal(err)
	}
}

// notify records the segment the normal way: the stream workflow's
// RecordSegment activity on the worker's report.
func (w *world) notify(t *testing.T, seg segment) *store.Recording {
	t.Helper()
	_, err := w.acts.RecordSegment(t.Context(), activities.RecordSegmentInput{
		SessionID: seg.session.String(), ChannelID: w.channel.String(), SegmentReport: recording.SegmentReport(seg.report),
	})
	if err != nil {
		t.Fatal(err)
	}
	return w.only(t, seg.report.Key)
}

// recordings lists every recording of the world's channel, as the API does.
func (w *world) recordings(t *testing.T) []store.Recording {
	t.Helper()
	rows, _, err := w.st.ListRecordings(t.Context(), w.channel, t0.Add(-24*time.Hour), t0.Add(24*time.Hour), store.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// only returns the one recording stored under key.
func (w *world) only(t *testing.T, key string) *store.Recording {
	t.Helper()
	var rows []store.Recording
	if err := w.st.DB.NewSelect().Model(&rows).Where("key = ?", key).Scan(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d recordings under %s, want 1", len(rows), key)
	}
	return &rows[0]
}

// checkRow checks the recording of seg: what the worker reported, with
// start and end stored to the millisecond and the given end.
func (w *world) checkRow(t *testing.T, seg segment, end time.Time) *store.Recording {
	t.Helper()
	r := w.only(t, seg.report.Key)
	want := store.Recording{
		ChannelID: w.channel, SessionID: seg.session, Key: seg.report.Key,
		Start: store.UTCms(seg.report.Start), End: store.UTCms(end),
		DurationMS: segLen.Milliseconds(), Size: seg.report.Size, Codec: "h264",
	}
	got := store.Recording{ChannelID: r.ChannelID, SessionID: r.SessionID, Key: r.Key,
		Start: r.Start.UTC(), End: r.End.UTC(), DurationMS: r.DurationMS, Size: r.Size, Codec: r.Codec}
	if got != want {
		t.Errorf("recording = %+v\nwant        %+v", got, want)
	}
	return r
}

// countingRecorder is the real recorder (the activities), counting calls
// and, while failing is set, failing them as an unreachable database would.
type countingRecorder struct {
	next    reconcile.Recorder
	mu      sync.Mutex
	calls   int
	failing bool
}

func (c *countingRecorder) RecordLateSegment(ctx context.Context, sessionID, channelID string, seg recording.SegmentReport) error {
	c.mu.Lock()
	c.calls++
	failing := c.failing
	c.mu.Unlock()
	if failing {
		return errors.New("database is unreachable")
	}
	return c.next.RecordLateSegment(ctx, sessionID, channelID, seg)
}

func (c *countingRecorder) setFailing(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failing = v
}

func (c *countingRecorder) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// run runs the reconciler on src until the test ends.
func run(t *testing.T, rec *reconcile.Reconciler, src reconcile.Source) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx, src) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// s3Event is an S3 event notification body as AWS sends it (keys
// URL-encoded), one record per key.
func s3Event(bucket string, at time.Time, objects ...s3Object) string {
	type obj struct {
		Key       string `json:"key"`
		Size      int64  `json:"size"`
		ETag      string `json:"eTag"`
		Sequencer string `json:"sequencer"`
	}
	var records []any
	for i, o := range objects {
		name := o.event
		if name == "" {
			name = "ObjectCreated:Put"
		}
		records = append(records, map[string]any{
			"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
			"eventTime": at.UTC().Format("2006-01-02T15:04:05.000Z"), "eventName": name,
			"userIdentity":      map[string]string{"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
			"requestParameters": map[string]string{"sourceIPAddress": "203.0.113.7"},
			"responseElements": map[string]string{"x-amz-request-id": "C3D13FE58DE4C810",
				"x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
			"s3": map[string]any{
				"s3SchemaVersion": "1.0", "configurationId": "recordings-created",
				"bucket": map[string]any{"name": bucket, "ownerIdentity": map[string]string{"principalId": "A3NL1KOZZKExample"},
					"arn": "arn:aws:s3:::" + bucket},
				"object": obj{Key: awsEncodeKey(o.key), Size: o.size, ETag: "d41d8cd98f00b204e9800998ecf8427e",
					Sequencer: fmt.Sprintf("0055AED6DCD9028%03d", i)},
			},
		})
	}
	b, _ := json.Marshal(map[string]any{"Records": records})
	return string(b)
}

// awsEncodeKey encodes a key as S3 does in events: form encoding, with
// slashes kept.
func awsEncodeKey(key string) string {
	return strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
}

type s3Object struct {
	key   string
	size  int64
	event string // default ObjectCreated:Put
}

// snsWrapped is body as SNS delivers it to an SQS queue without raw
// message delivery.
func snsWrapped(body string) string {
	b, _ := json.Marshal(map[string]string{
		"Type": "Notification", "MessageId": uuid.NewString(),
		"TopicArn": "arn:aws:sns:us-east-1:123456789012:vms-recordings", "Subject": "Amazon S3 Notification",
		"Message": body, "Timestamp": "2025-06-01T12:00:05.000Z", "SignatureVersion": "1",
		"Signature":      "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
		"SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
		"UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:vms-recordings:2bcfbf39",
	})
	return string(b)
}

// s3TestEvent is what S3 sends when a notification target is configured.
const s3TestEvent = `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2025-06-01T11:59:00.000Z","Bucket":"vms","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}`

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls cond until it holds or 15 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

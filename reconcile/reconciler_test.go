package reconcile_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/reconcile"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

// TestHandle runs single events through the reconciler against the real
// S3 server and each database.
func TestHandle(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) { testHandle(t, kind) })
	}
}

func testHandle(t *testing.T, kind string) {
	objects, _ := s3test.Start(t)
	ctx := t.Context()
	newWorld := func(t *testing.T, objects *objectstore.Client) *world { return newWorldOn(t, kind, objects) }
	created := func(key string) reconcile.Event {
		return reconcile.Event{Name: "ObjectCreated:Put", Bucket: objects.Bucket(), Key: key, Time: time.Now()}
	}

	t.Run("lost notification: recorded from the object's metadata", func(t *testing.T) {
		w := newWorld(t, objects)
		seg := w.newSegment(t0)
		w.upload(t, &seg, true)
		if out, err := w.rec.Handle(ctx, created(seg.report.Key)); out != reconcile.Recorded || err != nil {
			t.Fatalf("Handle = %s, %v; want recorded", out, err)
		}
		w.checkRow(t, seg, seg.report.End)
		if rows := w.recordings(t); len(rows) != 1 {
			t.Fatalf("listing has %d recordings, want 1", len(rows))
		}

		// The same event again (SQS delivers at least once), then the
		// worker's notification arriving after all: still one row.
		first := w.only(t, seg.report.Key)
		if out, err := w.rec.Handle(ctx, created(seg.report.Key)); out != reconcile.Present || err != nil {
			t.Fatalf("second Handle = %s, %v; want present", out, err)
		}
		if r := w.notify(t, seg); r.ID != first.ID {
			t.Fatalf("notification after the event made row %s, want %s", r.ID, first.ID)
		}
		if rows := w.recordings(t); len(rows) != 1 {
			t.Fatalf("listing has %d recordings, want 1", len(rows))
		}
	})

	t.Run("lost notification, object without metadata: recorded from the media", func(t *testing.T) {
		w := newWorld(t, objects)
		seg := w.newSegment(t0)
		w.upload(t, &seg, false)
		if out, err := w.rec.Handle(ctx, created(seg.report.Key)); out != reconcile.Recorded || err != nil {
			t.Fatalf("Handle = %s, %v; want recorded", out, err)
		}
		// The media knows the length, not the sub-millisecond start.
		w.checkRow(t, seg, store.UTCms(seg.report.Start).Add(segLen))
	})

	t.Run("metadata of another key is not trusted", func(t *testing.T) {
		w := newWorld(t, objects)
		seg := w.newSegment(t0)
		copied := seg
		// A report claiming to be 10 s long, uploaded under a key starting
		// a minute later (an object copied to another key).
		copied.report.End = copied.report.Start.Add(10 * time.Second)
		copied.report.Key = recording.RecordingKey(w.channel, seg.session, t0.Add(time.Minute))
		w.upload(t, &copied, true)
		if out, err := w.rec.Handle(ctx, created(copied.report.Key)); out != reconcile.Recorded || err != nil {
			t.Fatalf("Handle = %s, %v; want recorded", out, err)
		}
		r := w.only(t, copied.report.Key)
		if start := store.UTCms(t0.Add(time.Minute)); !r.Start.Equal(start) || !r.End.Equal(start.Add(segLen)) {
			t.Fatalf("recording %s..%s, want %s..%s (from the key and the media)", r.Start, r.End, start, start.Add(segLen))
		}
	})

	t.Run("notification first: the event finds the row", func(t *testing.T) {
		w := newWorld(t, objects)
		seg := w.newSegment(t0)
		w.upload(t, &seg, true)
		first := w.notify(t, seg)
		if out, err := w.rec.Handle(ctx, created(seg.report.Key)); out != reconcile.Present || err != nil {
			t.Fatalf("Handle = %s, %v; want present", out, err)
		}
		if r := w.checkRow(t, seg, seg.report.End); r.ID != first.ID {
			t.Fatalf("row %s replaced by %s", first.ID, r.ID)
		}
		if n := w.recorder.count(); n != 0 {
			t.Fatalf("recorder called %d times for a recorded segment", n)
		}
	})

	w := newWorld(t, objects)
	stored := w.newSegment(t0)
	w.upload(t, &stored, true)
	garbage := w.newSegment(t0.Add(time.Hour))
	if err := objects.Put(ctx, garbage.report.Key, bytes.NewReader([]byte("not a video")), 11, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	empty := w.newSegment(t0.Add(2 * time.Hour))
	if err := objects.Put(ctx, empty.report.Key, bytes.NewReader(nil), 0, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	otherChannel := recording.RecordingKey(uuid.New(), uuid.New(), t0)
	if err := objects.Put(ctx, otherChannel, bytes.NewReader([]byte("x")), 1, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	removed := created(stored.report.Key)
	removed.Name = "ObjectRemoved:Delete"
	otherBucket := created(stored.report.Key)
	otherBucket.Bucket = "someone-elses"

	for _, tc := range []struct {
		name string
		ev   reconcile.Event
		want reconcile.Outcome
	}{
		{"object removed", removed, reconcile.Ignored},
		{"other bucket", otherBucket, reconcile.Ignored},
		{"snapshot key", created(fmt.Sprintf("snapshots/%s/%s.jpg", w.channel, uuid.New())), reconcile.Ignored},
		{"clip key", created(fmt.Sprintf("clips/%s/%s.mp4", w.channel, uuid.New())), reconcile.Ignored},
		{"malformed key", created(fmt.Sprintf("recordings/%s/today/%s.mp4", w.channel, uuid.New())), reconcile.Invalid},
		{"date folders lie", created(fmt.Sprintf("recordings/%s/1999/01/01/%d-%s.mp4", w.channel, t0.UnixMilli(), uuid.New())), reconcile.Invalid},
		{"object gone", created(w.newSegment(t0.Add(3 * time.Hour)).report.Key), reconcile.Invalid},
		{"not media", created(garbage.report.Key), reconcile.Invalid},
		{"no media", created(empty.report.Key), reconcile.Invalid},
		{"channel deleted", created(otherChannel), reconcile.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := w.rec.Handle(ctx, tc.ev)
			if out != tc.want || err != nil {
				t.Fatalf("Handle = %s, %v; want %s", out, err, tc.want)
			}
		})
	}
	if rows := w.recordings(t); len(rows) != 0 {
		t.Fatalf("unusable events made recordings: %+v", rows)
	}
	if n := w.recorder.count(); n != 0 {
		t.Fatalf("recorder called %d times for unusable events", n)
	}
}

// TestEmbeddedS3Events is the dev default end to end: the embedded S3
// server posts its bucket events to the webhook, and segments whose
// notification was lost show up in the recordings listing.
func TestEmbeddedS3Events(t *testing.T) {
	hook := reconcile.NewWebhookSource(0, testLogger(t))
	hookURL, err := hook.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hook.Close() })
	objects := startS3WithWebhook(t, hookURL)
	w := newWorld(t, objects)
	handled := &tap{src: hook}
	run(t, w.rec, handled)

	// A segment the worker uploaded and never reported.
	lost := w.newSegment(t0)
	w.upload(t, &lost, true)
	handled.wait(t, lost.report.Key, 1)
	w.checkRow(t, lost, lost.report.End)
	if n := w.recorder.count(); n != 1 {
		t.Fatalf("recorder called %d times, want 1", n)
	}

	// The worker uploads it again (its first upload's response was lost):
	// a second event, still one row.
	w.upload(t, &lost, true)
	handled.wait(t, lost.report.Key, 2)

	// A segment reported the normal way: its event finds the row.
	reported := w.newSegment(t0.Add(segLen))
	w.upload(t, &reported, true)
	first := w.notify(t, reported)
	handled.wait(t, reported.report.Key, 1)
	if r := w.checkRow(t, reported, reported.report.End); r.ID != first.ID {
		t.Fatalf("row %s replaced by %s", first.ID, r.ID)
	}

	// Objects that are no recording segment.
	junk := []string{
		fmt.Sprintf("snapshots/%s/%s.jpg", w.channel, uuid.New()),
		fmt.Sprintf("recordings/%s/latest.mp4", w.channel),
	}
	for _, key := range junk {
		if err := objects.Put(t.Context(), key, bytes.NewReader([]byte("x")), 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range junk {
		handled.wait(t, key, 1)
	}

	rows := w.recordings(t)
	if len(rows) != 2 || rows[0].Key != lost.report.Key || rows[1].Key != reported.report.Key {
		t.Fatalf("listing = %+v, want the lost and the reported segment once each", rows)
	}
}

// TestGraceLetsTheNotificationWin: with a grace period, an event for a
// segment whose notification follows shortly costs a lookup, not a record.
func TestGraceLetsTheNotificationWin(t *testing.T) {
	hook := reconcile.NewWebhookSource(0, testLogger(t))
	hookURL, err := hook.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hook.Close() })
	objects := startS3WithWebhook(t, hookURL)
	w := newWorld(t, objects)
	w.rec.Grace = 2 * time.Second
	handled := &tap{src: hook}
	run(t, w.rec, handled)

	reported, lost := w.newSegment(t0), w.newSegment(t0.Add(segLen))
	uploaded := time.Now()
	w.upload(t, &reported, true)
	w.upload(t, &lost, true)
	w.notify(t, reported)
	handled.wait(t, reported.report.Key, 1)
	handled.wait(t, lost.report.Key, 1)
	// The embedded server stamps events to the second.
	if waited := time.Since(uploaded); waited < w.rec.Grace-time.Second {
		t.Errorf("events handled %s after the uploads, before the %s grace", waited, w.rec.Grace)
	}
	if n := w.recorder.count(); n != 1 {
		t.Fatalf("recorder called %d times, want once (for the lost segment only)", n)
	}
	w.checkRow(t, lost, lost.report.End)
	if rows := w.recordings(t); len(rows) != 2 {
		t.Fatalf("listing has %d recordings, want 2", len(rows))
	}
}

// startS3WithWebhook runs a dedicated embedded S3 server (this test binary,
// re-executed; s3test.Main serves it) posting its events to hookURL, and
// returns a client for a fresh bucket on it.
func startS3WithWebhook(t *testing.T, hookURL string) *objectstore.Client {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const access, secret = "events-access", "events-secret"
	emb, err := objectstore.StartEmbedded(t.Context(), []string{exe, "-test.run=^$"}, objectstore.ServerConfig{
		Dir: t.TempDir(), Addr: "127.0.0.1:0", AccessKey: access, SecretKey: secret, EventWebhookURL: hookURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := emb.Stop(); err != nil {
			t.Errorf("stop embedded S3: %v", err)
		}
	})
	objects, err := objectstore.New(t.Context(), objectstore.Config{
		Endpoint: emb.Endpoint(), Bucket: "vms", AccessKey: access, SecretKey: secret, PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := objects.EnsureBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	return objects
}

// tap passes a source's messages through and counts, per key, the events
// the reconciler has finished with (it acknowledges a message only then).
type tap struct {
	src  reconcile.Source
	mu   sync.Mutex
	done map[string]int
}

func (p *tap) Receive(ctx context.Context) ([]reconcile.Message, error) {
	msgs, err := p.src.Receive(ctx)
	for i, m := range msgs {
		next := m.Ack
		msgs[i].Ack = func(ctx context.Context) error {
			p.mu.Lock()
			if p.done == nil {
				p.done = map[string]int{}
			}
			for _, ev := range m.Events {
				p.done[ev.Key]++
			}
			p.mu.Unlock()
			if next != nil {
				return next(ctx)
			}
			return nil
		}
	}
	return msgs, err
}

// wait blocks until n events for key were handled.
func (p *tap) wait(t *testing.T, key string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d events for %s", n, key), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.done[key] >= n
	})
}

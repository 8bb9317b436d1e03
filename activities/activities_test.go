package activities_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows/contract"
)

func TestMain(m *testing.M) { s3test.Main(m) }

// t0 has a millisecond part on purpose: the store keeps it.
var t0 = time.Date(2025, 6, 2, 10, 0, 0, 250_000_000, time.UTC)

// world is one account with a channel, and activities over the store.
type world struct {
	st   *store.Store
	acts *activities.Activities
	acct *store.Account
	ch   *store.Channel
	sig  *signals
}

func newWorld(t testing.TB, st *store.Store) *world {
	t.Helper()
	ctx := context.Background()
	acct, err := st.CreateAccount(ctx, "acme", false)
	if err != nil {
		t.Fatal(err)
	}
	cam := &store.Camera{AccountID: acct.ID, Name: "door", Protocol: store.ProtocolRTSP, Host: "127.0.0.1", Port: 554}
	if err := st.CreateCamera(ctx, cam); err != nil {
		t.Fatal(err)
	}
	nvr := &store.NVR{Name: "nvr-" + uuid.NewString()[:8], MediaURL: "ws://127.0.0.1:1", Capacity: 10}
	if err := st.CreateNVR(ctx, nvr); err != nil {
		t.Fatal(err)
	}
	ch := &store.Channel{AccountID: acct.ID, CameraID: cam.ID, NVRID: nvr.ID, RetentionDays: 7}
	if err := st.CreateChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	sig := &signals{gone: map[string]bool{}}
	return &world{st: st, acts: &activities.Activities{Store: st, Temporal: sig}, acct: acct, ch: ch, sig: sig}
}

func (w *world) addRecording(t *testing.T, start time.Time, d time.Duration) *store.Recording {
	t.Helper()
	session := uuid.New()
	r := &store.Recording{ChannelID: w.ch.ID, SessionID: session, Key: recording.RecordingKey(w.ch.ID, session, start),
		Start: start, End: start.Add(d), DurationMS: d.Milliseconds(), Size: 1000, Codec: "avc1"}
	if _, err := w.st.AddRecording(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (w *world) newClip(t testing.TB, start, end time.Time) *store.Clip {
	t.Helper()
	c := &store.Clip{AccountID: w.acct.ID, ChannelID: w.ch.ID, Start: start, End: end}
	if err := w.st.CreateClip(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func (w *world) setChannelStatus(t *testing.T, status string) {
	t.Helper()
	_, err := w.st.DB.NewUpdate().Model((*store.Channel)(nil)).Set("status = ?", status).Where("id = ?", w.ch.ID).Exec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) deleteChannel(t *testing.T) {
	t.Helper()
	if err := w.st.DeleteChannel(context.Background(), w.acct.ID, w.ch.ID); err != nil {
		t.Fatal(err)
	}
}

// signals is a Temporal client that only records SignalWorkflow calls; ids
// in gone answer NotFound, as a finished workflow does.
type signals struct {
	client.Client // nil: any other call panics
	mu            sync.Mutex
	sent          []string // workflow ids
	gone          map[string]bool
}

func (s *signals) SignalWorkflow(_ context.Context, workflowID, _ string, name string, arg any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name != contract.SignalSegment {
		panic("unexpected signal " + name)
	}
	if _, ok := arg.(contract.SegmentSignal); !ok {
		panic("segment signal without a SegmentSignal")
	}
	if s.gone[workflowID] {
		return serviceerror.NewNotFound("workflow execution already completed")
	}
	s.sent = append(s.sent, workflowID)
	return nil
}

// wantPermanent fails unless err is a non-retryable application error of type.
func wantPermanent(t *testing.T, err error, errType string) {
	t.Helper()
	if !activities.HasErrorType(err, errType) {
		t.Fatalf("error = %v, want type %s", err, errType)
	}
	var appErr *temporal.ApplicationError
	if _, ok := err.(*temporal.ApplicationError); ok {
		appErr = err.(*temporal.ApplicationError)
	}
	if appErr == nil || !appErr.NonRetryable() {
		t.Errorf("error %v is retryable", err)
	}
}

func TestAppendClipRecordings(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		half := 30 * time.Second
		// Range [t0, t0+3m): a segment crossing the start (15 s inside), two
		// overlapping ones, a gap, one crossing the end (15 s inside), and
		// one wholly before the range.
		w.addRecording(t, t0.Add(-15*time.Second), half)       // covers [0, 15)
		w.addRecording(t, t0.Add(10*time.Second), half)        // [10, 40): 25 new
		w.addRecording(t, t0.Add(20*time.Second), half)        // [20, 50): 10 new
		w.addRecording(t, t0.Add(165*time.Second), half)       // [165, 180): 15 inside
		w.addRecording(t, t0.Add(-2*time.Minute), time.Minute) // before
		clip := w.newClip(t, t0, t0.Add(3*time.Minute))

		cov, err := w.acts.AppendClipRecordings(ctx, clip.ID.String())
		if err != nil {
			t.Fatal(err)
		}
		want := activities.Coverage{CoveredSeconds: 65, NewestEnd: t0.Add(195 * time.Second), Segments: 4, Added: 4}
		if cov.CoveredSeconds != want.CoveredSeconds || !cov.NewestEnd.Equal(want.NewestEnd) || cov.Segments != want.Segments || cov.Added != want.Added {
			t.Errorf("coverage = %+v, want %+v", cov, want)
		}
		got, err := st.ClipByID(ctx, clip.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Progress != 65.0/180 || got.Status != contract.ClipInProgress {
			t.Errorf("clip row = %s progress %v, want in_progress %v", got.Status, got.Progress, 65.0/180)
		}

		// Again: nothing new.
		cov, err = w.acts.AppendClipRecordings(ctx, clip.ID.String())
		if err != nil {
			t.Fatal(err)
		}
		if cov.Added != 0 || cov.Segments != 4 || cov.CoveredSeconds != 65 {
			t.Errorf("second append = %+v, want nothing added", cov)
		}
		recs, err := st.ClipRecordings(ctx, clip.ID)
		if err != nil || len(recs) != 4 {
			t.Fatalf("clip recordings = %d, %v; want 4", len(recs), err)
		}
	})
}

// A recording starting after the range tells the clip the stream has moved
// past it, even when a gap ends the range.
func TestAppendClipRecordingsStreamPastRange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.addRecording(t, t0, 30*time.Second)
		clip := w.newClip(t, t0, t0.Add(time.Minute))
		cov, err := w.acts.AppendClipRecordings(context.Background(), clip.ID.String())
		if err != nil {
			t.Fatal(err)
		}
		if !cov.NewestEnd.Equal(t0.Add(30 * time.Second)) {
			t.Errorf("newest end = %s, want the in-range end", cov.NewestEnd)
		}
		w.addRecording(t, t0.Add(90*time.Second), 30*time.Second)
		cov, err = w.acts.AppendClipRecordings(context.Background(), clip.ID.String())
		if err != nil {
			t.Fatal(err)
		}
		if !cov.NewestEnd.Equal(t0.Add(2*time.Minute)) || cov.Segments != 1 || cov.CoveredSeconds != 30 {
			t.Errorf("coverage = %+v, want newest end %s from the later recording, 1 segment, 30 s", cov, t0.Add(2*time.Minute))
		}
	})
}

func TestAppendClipRecordingsDeleted(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		clip := w.newClip(t, t0, t0.Add(time.Minute))
		w.deleteChannel(t) // cascades to the clip
		_, err := w.acts.AppendClipRecordings(context.Background(), clip.ID.String())
		wantPermanent(t, err, activities.ErrClipDeleted)
		_, err = w.acts.AppendClipRecordings(context.Background(), "not-a-uuid")
		wantPermanent(t, err, activities.ErrBadInput)
	})
}

func TestSetClipStatus(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		clip := w.newClip(t, t0, t0.Add(time.Minute))
		in := activities.ClipStatusInput{ClipID: clip.ID.String(), Status: contract.ClipFinished, Progress: 0.75, ObjectKey: "clips/x.mp4"}
		if err := w.acts.SetClipStatus(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, _ := st.ClipByID(ctx, clip.ID)
		if got.Status != contract.ClipFinished || got.Progress != 0.75 || got.ObjectKey != "clips/x.mp4" {
			t.Errorf("clip = %+v", got)
		}
		in.ClipID = uuid.NewString()
		wantPermanent(t, w.acts.SetClipStatus(ctx, in), activities.ErrClipDeleted)
	})
}

func TestCheckChannel(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		if err := w.acts.CheckChannel(ctx, w.ch.ID.String()); err != nil {
			t.Errorf("active channel: %v", err)
		}
		wantPermanent(t, w.acts.CheckChannel(ctx, uuid.NewString()), activities.ErrChannelInactive)
		w.setChannelStatus(t, store.ChannelDisabled)
		wantPermanent(t, w.acts.CheckChannel(ctx, w.ch.ID.String()), activities.ErrChannelInactive)
	})
}

func TestSessionLifecycle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		id := uuid.New()
		in := activities.CreateSessionInput{SessionID: id.String(), ChannelID: w.ch.ID.String(), Quality: "low", Worker: "nvr-1"}
		for range 2 { // idempotent
			if err := w.acts.CreateSession(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		for _, step := range []struct {
			status string
			at     time.Time
		}{{contract.SessionLive, t0}, {contract.SessionEnded, t0.Add(time.Minute)}} {
			if err := w.acts.SetSessionStatus(ctx, activities.SessionStatusInput{SessionID: id.String(), Status: step.status, At: step.at}); err != nil {
				t.Fatal(err)
			}
		}
		ss, err := st.SessionByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ss.Status != contract.SessionEnded || ss.Quality != "low" || ss.Worker != "nvr-1" ||
			ss.StartedAt == nil || !ss.StartedAt.Equal(t0) || ss.EndedAt == nil || !ss.EndedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("session = %+v", ss)
		}
		err = w.acts.SetSessionStatus(ctx, activities.SessionStatusInput{SessionID: uuid.NewString(), Status: contract.SessionLost, At: t0})
		wantPermanent(t, err, activities.ErrSessionDeleted)

		w.deleteChannel(t)
		in.SessionID = uuid.NewString()
		wantPermanent(t, w.acts.CreateSession(ctx, in), activities.ErrChannelDeleted)
	})
}

func TestRecordSegment(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		session := uuid.New()
		seg := recording.SegmentReport{Key: recording.RecordingKey(w.ch.ID, session, t0), Start: t0, End: t0.Add(30 * time.Second), Size: 4096, Codec: "avc1"}
		in := activities.RecordSegmentInput{SessionID: session.String(), ChannelID: w.ch.ID.String(), SegmentReport: seg}
		first, err := w.acts.RecordSegment(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := w.acts.RecordSegment(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if !first.Created || again.Created || again.RecordingID != first.RecordingID {
			t.Errorf("record twice = %+v then %+v, want created once, same id", first, again)
		}
		recs, _ := st.RecordingsBetween(ctx, w.ch.ID, t0, t0.Add(time.Minute))
		if len(recs) != 1 || recs[0].DurationMS != 30000 || recs[0].Size != 4096 {
			t.Errorf("recordings = %+v, want one of 30 s (duration from the times)", recs)
		}

		bad := in
		bad.End = bad.Start
		_, err = w.acts.RecordSegment(ctx, bad)
		wantPermanent(t, err, activities.ErrBadInput)

		w.deleteChannel(t)
		in.Key += ".other"
		_, err = w.acts.RecordSegment(ctx, in)
		wantPermanent(t, err, activities.ErrChannelDeleted)
	})
}

func TestNotifyClips(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		other := newWorld(t, st)
		seg := contract.SegmentSignal{RecordingID: uuid.NewString(), Start: t0, End: t0.Add(30 * time.Second)}
		overlapping := w.newClip(t, t0.Add(10*time.Second), t0.Add(time.Hour))
		before := w.newClip(t, t0.Add(-time.Hour), t0.Add(-time.Minute)) // the stream has passed it
		after := w.newClip(t, t0.Add(time.Minute), t0.Add(time.Hour))    // not reached yet
		finished := w.newClip(t, t0, t0.Add(time.Hour))
		if err := st.UpdateClip(ctx, finished.ID, store.ClipUpdate{Status: contract.ClipFinished}); err != nil {
			t.Fatal(err)
		}
		gone := w.newClip(t, t0, t0.Add(time.Minute)) // row lags, workflow done
		w.sig.gone[contract.ClipWorkflowID(gone.ID.String())] = true
		other.newClip(t, t0, t0.Add(time.Hour))

		n, err := w.acts.NotifyClips(ctx, activities.NotifyClipsInput{ChannelID: w.ch.ID.String(), Segment: seg})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{contract.ClipWorkflowID(overlapping.ID.String()): true, contract.ClipWorkflowID(before.ID.String()): true}
		if n != 2 || len(w.sig.sent) != 2 || !want[w.sig.sent[0]] || !want[w.sig.sent[1]] {
			t.Errorf("signalled %d: %v; want the overlapping and the passed clip (not %s)", n, w.sig.sent, after.ID)
		}
	})
}

func TestRecordLateSegment(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		clip := w.newClip(t, t0, t0.Add(time.Hour))
		session := uuid.New()
		seg := recording.SegmentReport{Key: recording.RecordingKey(w.ch.ID, session, t0), Start: t0, End: t0.Add(30 * time.Second), Size: 1}
		for range 2 {
			if err := w.acts.RecordLateSegment(ctx, session.String(), w.ch.ID.String(), seg); err != nil {
				t.Fatal(err)
			}
		}
		if len(w.sig.sent) != 1 || w.sig.sent[0] != contract.ClipWorkflowID(clip.ID.String()) {
			t.Errorf("signals = %v, want the clip once", w.sig.sent)
		}
	})
}

func TestVerifySnapshot(t *testing.T) {
	jpeg := append([]byte{0xFF, 0xD8, 0xFF, 0xDB}, bytes.Repeat([]byte{7}, 100)...)
	png := append([]byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}, bytes.Repeat([]byte{7}, 100)...)
	tests := []struct {
		name   string
		upload []byte // nil: none
		max    int64
		want   activities.SnapshotCheck
	}{
		{"jpeg", jpeg, 0, activities.SnapshotCheck{OK: true, Uploaded: true, ContentType: "image/jpeg", Size: 104}},
		{"png", png, 0, activities.SnapshotCheck{OK: true, Uploaded: true, ContentType: "image/png", Size: 108}},
		{"at the limit", jpeg, 104, activities.SnapshotCheck{OK: true, Uploaded: true, ContentType: "image/jpeg", Size: 104}},
		{"too large", jpeg, 103, activities.SnapshotCheck{Uploaded: true, Size: 104, Reason: "the upload is 104 bytes, more than the 103 allowed"}},
		{"gif", []byte("GIF89a......"), 0, activities.SnapshotCheck{Uploaded: true, Size: 12, Reason: "the upload is not a JPEG or PNG image"}},
		{"short", []byte{0xFF, 0xD8}, 0, activities.SnapshotCheck{Uploaded: true, Size: 2, Reason: "the upload is not a JPEG or PNG image"}},
		{"empty", []byte{}, 0, activities.SnapshotCheck{Uploaded: true, Reason: "the upload is empty"}},
		{"missing", nil, 0, activities.SnapshotCheck{Reason: "nothing was uploaded"}},
	}
	st := storetest.Open(t, "sqlite")
	w := newWorld(t, st)
	objects, _ := s3test.Start(t)
	w.acts.Objects = objects
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			sn := &store.Snapshot{AccountID: w.acct.ID, ChannelID: w.ch.ID, Source: contract.SnapshotClient}
			if err := st.CreateSnapshot(ctx, sn); err != nil {
				t.Fatal(err)
			}
			if tt.upload != nil {
				if err := objects.Put(ctx, sn.Key, bytes.NewReader(tt.upload), int64(len(tt.upload)), "image/jpeg"); err != nil {
					t.Fatal(err)
				}
			}
			w.acts.MaxSnapshotBytes = tt.max
			got, err := w.acts.VerifySnapshot(ctx, sn.ID.String())
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("check = %+v, want %+v", got, tt.want)
			}
		})
	}
	_, err := w.acts.VerifySnapshot(context.Background(), uuid.NewString())
	wantPermanent(t, err, activities.ErrSnapshotDeleted)
}

// The presigned PUT works for a plain HTTP client, and the status lands in
// the row.
func TestPresignSnapshotPutAndStatus(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		objects, _ := s3test.Start(t)
		w.acts.Objects = objects
		sn := &store.Snapshot{AccountID: w.acct.ID, ChannelID: w.ch.ID, Source: contract.SnapshotClient}
		if err := st.CreateSnapshot(ctx, sn); err != nil {
			t.Fatal(err)
		}
		url, err := w.acts.PresignSnapshotPut(ctx, activities.PresignPutInput{Key: sn.Key, Expiry: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		body := []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "image/jpeg")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT = %s", resp.Status)
		}
		check, err := w.acts.VerifySnapshot(ctx, sn.ID.String())
		if err != nil || !check.OK {
			t.Fatalf("check = %+v, %v", check, err)
		}
		in := activities.SnapshotStatusInput{SnapshotID: sn.ID.String(), Status: contract.SnapshotReady, ContentType: check.ContentType, Size: check.Size}
		if err := w.acts.SetSnapshotStatus(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, _ := st.SnapshotByID(ctx, sn.ID)
		if got.Status != contract.SnapshotReady || got.ContentType != "image/jpeg" || got.Size != 7 {
			t.Errorf("snapshot = %+v", got)
		}
		in.SnapshotID = uuid.NewString()
		wantPermanent(t, w.acts.SetSnapshotStatus(ctx, in), activities.ErrSnapshotDeleted)
		_, err = w.acts.PresignSnapshotPut(ctx, activities.PresignPutInput{Key: sn.Key})
		if err == nil || !strings.Contains(err.Error(), "positive expiry") {
			t.Errorf("presign without expiry: %v", err)
		}
	})
}

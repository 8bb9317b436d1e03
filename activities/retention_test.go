package activities_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

// retentionChannel makes a channel with the given retention and recordings
// (rows and objects) that ended ago before now.
func retentionChannel(t *testing.T, st *store.Store, objects *objectstore.Client, days int, now time.Time, ago ...time.Duration) (*store.Channel, []store.Recording) {
	t.Helper()
	ctx := context.Background()
	acct, err := st.CreateAccount(ctx, "r", false)
	if err != nil {
		t.Fatal(err)
	}
	cam := &store.Camera{AccountID: acct.ID, Name: "c", Protocol: store.ProtocolRTSP, Host: "127.0.0.1", Port: 554}
	if err := st.CreateCamera(ctx, cam); err != nil {
		t.Fatal(err)
	}
	nvr := &store.NVR{Name: "nvr-" + uuid.NewString()[:8], MediaURL: "ws://127.0.0.1:1", Capacity: 10}
	if err := st.CreateNVR(ctx, nvr); err != nil {
		t.Fatal(err)
	}
	ch := &store.Channel{AccountID: acct.ID, CameraID: cam.ID, NVRID: nvr.ID, RetentionDays: days}
	if err := st.CreateChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	var recs []store.Recording
	for _, a := range ago {
		end := now.Add(-a)
		session := uuid.New()
		r := store.Recording{ChannelID: ch.ID, SessionID: session, Key: recording.RecordingKey(ch.ID, session, end.Add(-30*time.Second)),
			Start: end.Add(-30 * time.Second), End: end, DurationMS: 30000, Size: 3, Codec: "avc1"}
		if _, err := st.AddRecording(ctx, &r); err != nil {
			t.Fatal(err)
		}
		if err := objects.Put(ctx, r.Key, bytes.NewReader([]byte("mp4")), 3, "video/mp4"); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return ch, recs
}

func TestExpireRecordings(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		objects, _ := s3test.Start(t)
		acts := &activities.Activities{Store: st, Objects: objects}
		now := time.Now().UTC()
		day := 24 * time.Hour
		// Channel A keeps 7 days: two recordings are older, one is recent.
		chA, recsA := retentionChannel(t, st, objects, 7, now, 8*day, 7*day+time.Minute, 6*day)
		// Channel B keeps 30 days: nothing expires.
		_, recsB := retentionChannel(t, st, objects, 30, now, 8*day, 29*day)
		clipKey := recording.ClipKey(chA.ID, uuid.New())
		if err := objects.Put(ctx, clipKey, bytes.NewReader([]byte("clip")), 4, "video/mp4"); err != nil {
			t.Fatal(err)
		}

		// One channel per page and batches of one, to cross every boundary.
		in := activities.RetentionInput{Now: now, Channels: 1, Batch: 1}
		deleted := 0
		for pass := 0; ; pass++ {
			if pass > 10 {
				t.Fatal("the sweep does not end")
			}
			res, err := acts.ExpireRecordings(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			deleted += res.Deleted
			in.AfterChannel = res.NextChannel
			if res.Done {
				break
			}
		}
		if deleted != 2 {
			t.Fatalf("deleted %d recordings, want 2", deleted)
		}
		gone := []store.Recording{recsA[0], recsA[1]}
		kept := []store.Recording{recsA[2], recsB[0], recsB[1]}
		for _, r := range gone {
			if _, err := objects.Head(ctx, r.Key); !errors.Is(err, objectstore.ErrNotFound) {
				t.Errorf("expired object %s still there (%v)", r.Key, err)
			}
		}
		for _, r := range kept {
			if _, err := objects.Head(ctx, r.Key); err != nil {
				t.Errorf("recent object %s deleted: %v", r.Key, err)
			}
		}
		left, err := st.RecordingsBetween(ctx, chA.ID, now.Add(-30*day), now)
		if err != nil || len(left) != 1 || left[0].ID != recsA[2].ID {
			t.Fatalf("channel A rows after the sweep: %v %v", left, err)
		}
		if _, err := objects.Head(ctx, clipKey); err != nil {
			t.Fatalf("clip object deleted by retention: %v", err)
		}
		// A second sweep finds nothing more.
		res, err := acts.ExpireRecordings(ctx, activities.RetentionInput{Now: now, Channels: 100, Batch: 100})
		if err != nil || res.Deleted != 0 || !res.Done {
			t.Fatalf("second sweep: %+v %v", res, err)
		}
	})
}

func TestPurgeChannelObjects(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	ctx := context.Background()
	objects, _ := s3test.Start(t)
	acts := &activities.Activities{Store: st, Objects: objects}
	now := time.Now().UTC()
	ch, recs := retentionChannel(t, st, objects, 7, now, time.Hour, 2*time.Hour)
	_, otherRecs := retentionChannel(t, st, objects, 7, now, time.Hour)
	clipKey := recording.ClipKey(ch.ID, uuid.New())
	if err := objects.Put(ctx, clipKey, bytes.NewReader([]byte("clip")), 4, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	if _, err := acts.PurgeChannelObjects(ctx, ch.ID.String()); !activities.HasErrorType(err, activities.ErrBadInput) {
		t.Fatalf("purging a live channel: %v, want refusal", err)
	}
	if err := st.DeleteChannel(ctx, ch.AccountID, ch.ID); err != nil {
		t.Fatal(err)
	}
	// A database that cannot answer is not a channel that is gone.
	broken := storetest.Open(t, "sqlite")
	broken.Close()
	brokenActs := &activities.Activities{Store: broken, Objects: objects}
	if n, err := brokenActs.PurgeChannelObjects(ctx, ch.ID.String()); err == nil || n != 0 || activities.HasErrorType(err, activities.ErrBadInput) {
		t.Fatalf("purge on a failed read: %d objects, %v; want a retryable error and nothing deleted", n, err)
	}
	for _, k := range []string{recs[0].Key, recs[1].Key, clipKey} {
		if _, err := objects.Head(ctx, k); err != nil {
			t.Fatalf("%s deleted after a failed read: %v", k, err)
		}
	}
	n, err := acts.PurgeChannelObjects(ctx, ch.ID.String())
	if err != nil || n != 3 {
		t.Fatalf("purged %d objects (%v), want 3", n, err)
	}
	for _, k := range []string{recs[0].Key, recs[1].Key, clipKey} {
		if _, err := objects.Head(ctx, k); !errors.Is(err, objectstore.ErrNotFound) {
			t.Errorf("%s survived the purge (%v)", k, err)
		}
	}
	if _, err := objects.Head(ctx, otherRecs[0].Key); err != nil {
		t.Fatalf("another channel's object purged: %v", err)
	}
}

package workflows_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
	"github.com/opennvr/vms/workflows/temporaltest"
)

// TestRetentionWorkflow sweeps real rows and objects: the expired recording
// goes from S3 and the database, the recent one and the clip stay.
func TestRetentionWorkflow(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, "sqlite")
	objects, _ := s3test.Start(t)
	acct, _ := st.CreateAccount(ctx, "r", false)
	cam := &store.Camera{AccountID: acct.ID, Name: "c", Protocol: store.ProtocolRTSP, Host: "127.0.0.1", Port: 554}
	if err := st.CreateCamera(ctx, cam); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateNVR(ctx, &store.NVR{Name: "n", MediaURL: "ws://127.0.0.1:1", Capacity: 5}); err != nil {
		t.Fatal(err)
	}
	ch := &store.Channel{AccountID: acct.ID, CameraID: cam.ID, RetentionDays: 1}
	if err := st.CreateChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	env := (&testsuite.WorkflowTestSuite{}).NewTestWorkflowEnvironment()
	now := env.Now().UTC()
	var recs []store.Recording
	for _, end := range []time.Time{now.Add(-50 * time.Hour), now.Add(-time.Hour)} {
		r := store.Recording{ChannelID: ch.ID, SessionID: uuid.New(), Start: end.Add(-30 * time.Second), End: end, Codec: "avc1"}
		r.Key = recording.RecordingKey(ch.ID, r.SessionID, r.Start)
		if _, err := st.AddRecording(ctx, &r); err != nil {
			t.Fatal(err)
		}
		if err := objects.Put(ctx, r.Key, bytes.NewReader([]byte("x")), 1, "video/mp4"); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	clipKey := recording.ClipKey(ch.ID, uuid.New())
	if err := objects.Put(ctx, clipKey, bytes.NewReader([]byte("clip")), 4, "video/mp4"); err != nil {
		t.Fatal(err)
	}

	workflows.Register(env, &activities.Activities{Store: st, Objects: objects})
	env.ExecuteWorkflow(workflows.RetentionWorkflow, contract.RetentionInput{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if _, err := objects.Head(ctx, recs[0].Key); !errors.Is(err, objectstore.ErrNotFound) {
		t.Fatalf("expired object kept: %v", err)
	}
	for _, k := range []string{recs[1].Key, clipKey} {
		if _, err := objects.Head(ctx, k); err != nil {
			t.Fatalf("%s deleted: %v", k, err)
		}
	}
	left, _ := st.RecordingsBetween(ctx, ch.ID, now.Add(-100*time.Hour), now)
	if len(left) != 1 || left[0].ID != recs[1].ID {
		t.Fatalf("rows left: %v", left)
	}
}

// TestRetentionSchedule: the schedule is created once and visible on the
// real dev server; a second worker start finds it and succeeds.
func TestRetentionSchedule(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Temporal dev server")
	}
	c, _ := temporaltest.Start(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := workflows.EnsureRetentionSchedule(ctx, c); err != nil {
			t.Fatalf("ensure #%d: %v", i+1, err)
		}
	}
	h := c.ScheduleClient().GetHandle(ctx, contract.RetentionScheduleID)
	t.Cleanup(func() { h.Delete(context.Background()) })
	desc, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := desc.Schedule.Spec.Intervals; len(got) != 1 || got[0].Every != contract.RetentionInterval {
		t.Fatalf("schedule spec %+v", desc.Schedule.Spec)
	}
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || action.TaskQueue != contract.TaskQueue {
		t.Fatalf("schedule action %+v", desc.Schedule.Action)
	}
}

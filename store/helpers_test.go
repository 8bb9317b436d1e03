package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows/contract"
)

// t0 has a millisecond part on purpose: times must keep it on both databases.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

func newAccount(tb testing.TB, s *store.Store, name string) *store.Account {
	tb.Helper()
	a, err := s.CreateAccount(context.Background(), name, false)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func newAgent(tb testing.TB, s *store.Store, accountID uuid.UUID, name string) *store.Agent {
	tb.Helper()
	a, _, err := s.CreateAgent(context.Background(), accountID, name)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func newCamera(tb testing.TB, s *store.Store, accountID uuid.UUID, name string) *store.Camera {
	tb.Helper()
	c := &store.Camera{
		AccountID: accountID, Name: name, Protocol: store.ProtocolRTSP,
		Host: "127.0.0.1", Port: 554, Username: "admin", Password: "secret",
		StreamHigh: "/h264/ch1/main", StreamLow: "/h264/ch1/sub",
	}
	if err := s.CreateCamera(context.Background(), c); err != nil {
		tb.Fatal(err)
	}
	return c
}

func newNVR(tb testing.TB, s *store.Store, name string, capacity int, status string) *store.NVR {
	tb.Helper()
	n := &store.NVR{Name: name, MediaURL: "ws://" + name + ":8082", Capacity: capacity, Status: status}
	if err := s.CreateNVR(context.Background(), n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func newChannel(tb testing.TB, s *store.Store, accountID, cameraID, nvrID uuid.UUID) *store.Channel {
	tb.Helper()
	c := &store.Channel{AccountID: accountID, CameraID: cameraID, NVRID: nvrID, RetentionDays: 7}
	if err := s.CreateChannel(context.Background(), c); err != nil {
		tb.Fatal(err)
	}
	return c
}

// world is one account with a camera and a channel on an NVR.
type world struct {
	acct *store.Account
	cam  *store.Camera
	ch   *store.Channel
}

func newWorld(tb testing.TB, s *store.Store, name string, nvrID uuid.UUID) world {
	tb.Helper()
	a := newAccount(tb, s, name)
	c := newCamera(tb, s, a.ID, name+"-cam")
	return world{acct: a, cam: c, ch: newChannel(tb, s, a.ID, c.ID, nvrID)}
}

func newRecording(channelID, sessionID uuid.UUID, start time.Time, d time.Duration) *store.Recording {
	return &store.Recording{
		ChannelID: channelID, SessionID: sessionID,
		Key:   recording.RecordingKey(channelID, sessionID, start),
		Start: start, End: start.Add(d), DurationMS: d.Milliseconds(),
		Size: 1 << 20, Codec: "avc1.64001f",
	}
}

func addRecording(tb testing.TB, s *store.Store, channelID, sessionID uuid.UUID, start time.Time, d time.Duration) *store.Recording {
	tb.Helper()
	r := newRecording(channelID, sessionID, start, d)
	created, err := s.AddRecording(context.Background(), r)
	if err != nil {
		tb.Fatal(err)
	}
	if !created {
		tb.Fatalf("recording %s already existed", r.Key)
	}
	return r
}

func newClip(tb testing.TB, s *store.Store, w world, start, end time.Time) *store.Clip {
	tb.Helper()
	c := &store.Clip{AccountID: w.acct.ID, ChannelID: w.ch.ID, Start: start, End: end}
	if err := s.CreateClip(context.Background(), c); err != nil {
		tb.Fatal(err)
	}
	return c
}

func newSnapshot(tb testing.TB, s *store.Store, w world) *store.Snapshot {
	tb.Helper()
	sn := &store.Snapshot{AccountID: w.acct.ID, ChannelID: w.ch.ID, Source: contract.SnapshotClient}
	if err := s.CreateSnapshot(context.Background(), sn); err != nil {
		tb.Fatal(err)
	}
	return sn
}

func newSession(tb testing.TB, s *store.Store, channelID uuid.UUID) *store.StreamSession {
	tb.Helper()
	ss := &store.StreamSession{ID: uuid.New(), ChannelID: channelID, Quality: "high", Worker: "nvr-1"}
	if err := s.CreateSession(context.Background(), ss); err != nil {
		tb.Fatal(err)
	}
	return ss
}

// count counts the rows of table matching where (a bun condition with args).
func count(tb testing.TB, s *store.Store, table, where string, args ...any) int {
	tb.Helper()
	q := s.DB.NewSelect().Table(table)
	if where != "" {
		q = q.Where(where, args...)
	}
	n, err := q.Count(context.Background())
	if err != nil {
		tb.Fatalf("count %s: %v", table, err)
	}
	return int(n)
}

// sameTime fails unless got is the instant want keeps in the store (UTC,
// milliseconds) and reads as UTC.
func sameTime(tb testing.TB, what string, got, want time.Time) {
	tb.Helper()
	want = store.UTCms(want)
	if !got.Equal(want) {
		tb.Errorf("%s = %s, want %s", what, fmtTime(got), fmtTime(want))
	}
	if _, off := got.Zone(); off != 0 {
		tb.Errorf("%s = %s: not UTC", what, fmtTime(got))
	}
}

func fmtTime(t time.Time) string { return t.Format(time.RFC3339Nano) }

func ids[T any](rows []T, id func(T) uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		out[i] = id(r)
	}
	return out
}

func recordingIDs(rows []store.Recording) []uuid.UUID {
	return ids(rows, func(r store.Recording) uuid.UUID { return r.ID })
}

func equalIDs(a, b []uuid.UUID) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func pageSizes(total, limit int) []int {
	var out []int
	for total > 0 {
		n := min(total, limit)
		out = append(out, n)
		total -= n
	}
	return out
}

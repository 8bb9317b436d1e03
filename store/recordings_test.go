package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

func TestAddRecordingIdempotent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		sess := newSession(t, s, w.ch.ID)
		first := addRecording(t, s, w.ch.ID, sess.ID, t0, 30*time.Second)

		// A re-delivered notification for the same key, even with other
		// figures, returns the stored row untouched.
		again := newRecording(w.ch.ID, sess.ID, t0, 31*time.Second)
		again.Size = 7
		created, err := s.AddRecording(ctx, again)
		if err != nil {
			t.Fatal(err)
		}
		if created {
			t.Error("second AddRecording with the same key: created=true")
		}
		if again.ID != first.ID {
			t.Errorf("second AddRecording returned id %s, want %s", again.ID, first.ID)
		}
		if again.Size != first.Size || again.DurationMS != first.DurationMS {
			t.Errorf("second AddRecording returned size %d duration %d, want the stored %d %d",
				again.Size, again.DurationMS, first.Size, first.DurationMS)
		}
		sameTime(t, "returned end", again.End, first.End)
		sameTime(t, "returned created_at", again.CreatedAt, first.CreatedAt)
		if n := count(t, s, "recordings", "key = ?", first.Key); n != 1 {
			t.Errorf("%d rows for key %s, want 1", n, first.Key)
		}
	})
}

// TestAddRecordingConcurrentDuplicates: notifications for one segment
// delivered at once (a retry racing the original) store one row, and every
// caller gets its id.
func TestAddRecordingConcurrentDuplicates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		sess := uuid.New()
		const senders = 8
		recs := make([]*store.Recording, senders)
		created := make([]bool, senders)
		errs := make([]error, senders)
		var wg sync.WaitGroup
		for i := range senders {
			recs[i] = newRecording(w.ch.ID, sess, t0, 30*time.Second)
			wg.Go(func() { created[i], errs[i] = s.AddRecording(ctx, recs[i]) })
		}
		wg.Wait()
		n := 0
		for i := range senders {
			if errs[i] != nil {
				t.Errorf("sender %d: %v", i, errs[i])
			}
			if created[i] {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d senders got created=true, want 1", n)
		}
		stored := count(t, s, "recordings", "channel_id = ?", w.ch.ID)
		if stored != 1 {
			t.Fatalf("%d rows stored, want 1", stored)
		}
		for i := 1; i < senders; i++ {
			if recs[i].ID != recs[0].ID {
				t.Errorf("sender %d got id %s, sender 0 got %s", i, recs[i].ID, recs[0].ID)
			}
		}
	})
}

func TestClipSegmentsIdempotent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		sess := newSession(t, s, w.ch.ID)
		// Inserted newest first, so ordering by start is not insertion order.
		r3 := addRecording(t, s, w.ch.ID, sess.ID, t0.Add(60*time.Second), 30*time.Second)
		r2 := addRecording(t, s, w.ch.ID, sess.ID, t0.Add(30*time.Second), 30*time.Second)
		r1 := addRecording(t, s, w.ch.ID, sess.ID, t0, 30*time.Second)
		clip := newClip(t, s, w, t0, t0.Add(90*time.Second))
		otherClip := newClip(t, s, w, t0, t0.Add(30*time.Second))

		steps := []struct {
			name   string
			clip   uuid.UUID
			append []uuid.UUID
			added  int
		}{
			{"first append", clip.ID, []uuid.UUID{r3.ID, r1.ID}, 2},
			{"retried append", clip.ID, []uuid.UUID{r3.ID, r1.ID}, 0},
			{"overlapping append with a duplicate", clip.ID, []uuid.UUID{r1.ID, r2.ID, r2.ID}, 1},
			{"nothing", clip.ID, nil, 0},
			{"other clip", otherClip.ID, []uuid.UUID{r1.ID}, 1},
		}
		for _, st := range steps {
			n, err := s.AppendClipSegments(ctx, st.clip, st.append)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if n != st.added {
				t.Errorf("%s: %d new, want %d", st.name, n, st.added)
			}
		}

		lists := []struct {
			clip uuid.UUID
			want []uuid.UUID
		}{
			{clip.ID, []uuid.UUID{r1.ID, r2.ID, r3.ID}},
			{otherClip.ID, []uuid.UUID{r1.ID}},
			{uuid.New(), nil},
		}
		for _, l := range lists {
			got, err := s.ClipRecordings(ctx, l.clip)
			if err != nil {
				t.Fatal(err)
			}
			if !equalIDs(recordingIDs(got), l.want) {
				t.Errorf("ClipRecordings(%s) = %v, want %v", l.clip, recordingIDs(got), l.want)
			}
		}
	})
}

func TestListRecordingsPaging(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		noise := newChannel(t, s, w.acct.ID, w.cam.ID, nvr.ID)
		sessA, sessB := newSession(t, s, w.ch.ID), newSession(t, s, w.ch.ID)

		// 24 back-to-back segments plus one from a second session starting
		// at the same instant as the 10th: sorted, the pair sits at
		// positions 9 and 10, across the first page boundary at limit 10.
		var recs []*store.Recording
		for i := range 24 {
			recs = append(recs, newRecording(w.ch.ID, sessA.ID, t0.Add(time.Duration(i)*30*time.Second), 30*time.Second))
		}
		recs = append(recs, newRecording(w.ch.ID, sessB.ID, t0.Add(9*30*time.Second), 20*time.Second))
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		for _, r := range recs {
			if created, err := s.AddRecording(ctx, r); err != nil || !created {
				t.Fatalf("AddRecording: %v created=%v", err, created)
			}
			addRecording(t, s, noise.ID, r.SessionID, r.Start, time.Second) // must never show up
		}
		slices.SortFunc(recs, func(a, b *store.Recording) int {
			if c := a.Start.Compare(b.Start); c != 0 {
				return c
			}
			return slices.Compare(a.ID[:], b.ID[:])
		})
		want := make([]uuid.UUID, len(recs))
		for i, r := range recs {
			want[i] = r.ID
		}
		if !recs[9].Start.Equal(recs[10].Start) {
			t.Fatal("test setup: same-start pair is not at positions 9 and 10")
		}

		from, to := t0.Add(-time.Hour), t0.Add(time.Hour)
		for _, tc := range []struct {
			limit int
			pages []int
		}{
			{10, []int{10, 10, 5}},
			{1, repeat(1, 25)},
			{5, []int{5, 5, 5, 5, 5}},
			{24, []int{24, 1}},
			{25, []int{25}},
			{100, []int{25}},
		} {
			t.Run(fmt.Sprintf("limit %d", tc.limit), func(t *testing.T) {
				var got []uuid.UUID
				var sizes []int
				cursor := ""
				for range 30 {
					page, next, err := s.ListRecordings(ctx, w.ch.ID, from, to, store.Page{Limit: tc.limit, Cursor: cursor})
					if err != nil {
						t.Fatal(err)
					}
					got, sizes = append(got, recordingIDs(page)...), append(sizes, len(page))
					if next == "" {
						break
					}
					cursor = next
				}
				if !slices.Equal(sizes, tc.pages) {
					t.Errorf("page sizes %v, want %v", sizes, tc.pages)
				}
				if !equalIDs(got, want) {
					t.Errorf("paged ids not all exactly once in (start, id) order\n got %v\nwant %v", got, want)
				}
			})
		}

		all, err := s.RecordingsBetween(ctx, w.ch.ID, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if !equalIDs(recordingIDs(all), want) {
			t.Errorf("RecordingsBetween ids\n got %v\nwant %v", recordingIDs(all), want)
		}

		t.Run("bad cursor", func(t *testing.T) {
			enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
			for _, c := range []string{
				"!!not base64!!",
				enc("no separator"),
				enc("yesterday|" + uuid.NewString()),
				enc(t0.Format(time.RFC3339Nano) + "|not-a-uuid"),
				uuid.NewString(), // a camera cursor
			} {
				if _, _, err := s.ListRecordings(ctx, w.ch.ID, from, to, store.Page{Limit: 10, Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
					t.Errorf("cursor %q: err %v, want ErrBadCursor", c, err)
				}
			}
		})
	})
}

func TestListRecordingsRange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		sess := newSession(t, s, w.ch.ID)
		const seg = 30 * time.Second
		r := map[string]uuid.UUID{}
		for i, name := range []string{"r1", "r2", "r3"} {
			r[name] = addRecording(t, s, w.ch.ID, sess.ID, t0.Add(time.Duration(i)*seg), seg).ID
		}
		ms := time.Millisecond

		cases := []struct {
			name     string
			from, to time.Time
			want     []string
		}{
			{"exact segment", t0.Add(seg), t0.Add(2 * seg), []string{"r2"}},
			{"straddles from and to", t0.Add(15 * time.Second), t0.Add(45 * time.Second), []string{"r1", "r2"}},
			{"1 ms inside r2", t0.Add(seg + ms), t0.Add(2*seg - ms), []string{"r2"}},
			{"ends 1 ms after from", t0.Add(seg - ms), t0.Add(seg), []string{"r1"}},
			{"starts 1 ms before to", t0.Add(2 * seg), t0.Add(2*seg + ms), []string{"r3"}},
			{"sub-ms from keeps r1 out", t0.Add(seg + 500*time.Microsecond), t0.Add(2 * seg), []string{"r2"}},
			{"everything", t0.Add(-time.Hour), t0.Add(time.Hour), []string{"r1", "r2", "r3"}},
			{"before all", t0.Add(-time.Hour), t0, nil},
			{"after all", t0.Add(3 * seg), t0.Add(time.Hour), nil},
			{"empty range", t0.Add(seg), t0.Add(seg), nil},
			{"range in another zone", t0.Add(seg).In(time.FixedZone("X", -7*3600)), t0.Add(2 * seg).In(time.FixedZone("Y", 9*3600)), []string{"r2"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var want []uuid.UUID
				for _, n := range tc.want {
					want = append(want, r[n])
				}
				page, next, err := s.ListRecordings(ctx, w.ch.ID, tc.from, tc.to, store.Page{Limit: 10})
				if err != nil || next != "" {
					t.Fatalf("ListRecordings: %v, next %q", err, next)
				}
				if !equalIDs(recordingIDs(page), want) {
					t.Errorf("ListRecordings = %v, want %v", recordingIDs(page), want)
				}
				between, err := s.RecordingsBetween(ctx, w.ch.ID, tc.from, tc.to)
				if err != nil {
					t.Fatal(err)
				}
				if !equalIDs(recordingIDs(between), want) {
					t.Errorf("RecordingsBetween = %v, want %v", recordingIDs(between), want)
				}
			})
		}
	})
}

func TestTimeline(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		sess := newSession(t, s, w.ch.ID)
		m := func(d time.Duration) time.Time { return t0.Add(d) }
		min, sec := time.Minute, time.Second
		for _, r := range []struct{ start, end time.Duration }{
			{1 * min, 2 * min},
			{2 * min, 3 * min},               // back to back with the previous
			{3*min + 2*sec, 4 * min},         // 2 s hole before it
			{6 * min, 7 * min},               // 2 min hole before it
			{6*min + 10*sec, 6*min + 20*sec}, // inside the previous
			{9 * min, 11 * min},
		} {
			addRecording(t, s, w.ch.ID, sess.ID, m(r.start), r.end-r.start)
		}

		type span = [2]time.Duration
		cases := []struct {
			name      string
			from, to  time.Duration
			tolerance time.Duration
			spans     []span
			gaps      []span
		}{
			{"gaps at start and middle, end clipped", 0, 10 * min, 0,
				[]span{{1 * min, 3 * min}, {3*min + 2*sec, 4 * min}, {6 * min, 7 * min}, {9 * min, 10 * min}},
				[]span{{0, 1 * min}, {3 * min, 3*min + 2*sec}, {4 * min, 6 * min}, {7 * min, 9 * min}}},
			{"tolerance merges the 2 s hole", 0, 10 * min, 5 * sec,
				[]span{{1 * min, 4 * min}, {6 * min, 7 * min}, {9 * min, 10 * min}},
				[]span{{0, 1 * min}, {4 * min, 6 * min}, {7 * min, 9 * min}}},
			{"tolerance just short of the hole", 0, 10 * min, 2*sec - time.Millisecond,
				[]span{{1 * min, 3 * min}, {3*min + 2*sec, 4 * min}, {6 * min, 7 * min}, {9 * min, 10 * min}},
				[]span{{0, 1 * min}, {3 * min, 3*min + 2*sec}, {4 * min, 6 * min}, {7 * min, 9 * min}}},
			{"gap at end, start clipped", 90 * sec, 8 * min, 5 * sec,
				[]span{{90 * sec, 4 * min}, {6 * min, 7 * min}},
				[]span{{4 * min, 6 * min}, {7 * min, 8 * min}}},
			{"inside one recording", 6*min + 15*sec, 6*min + 45*sec, 0,
				[]span{{6*min + 15*sec, 6*min + 45*sec}}, nil},
			{"nothing recorded", 20 * min, 30 * min, 0,
				nil, []span{{20 * min, 30 * min}}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				spans, gaps, err := s.Timeline(ctx, w.ch.ID, m(tc.from), m(tc.to), tc.tolerance)
				if err != nil {
					t.Fatal(err)
				}
				toSpans := func(ss []span) []store.Span {
					var out []store.Span
					for _, x := range ss {
						out = append(out, store.Span{Start: m(x[0]), End: m(x[1])})
					}
					return out
				}
				checkSpans(t, "spans", spans, toSpans(tc.spans))
				checkSpans(t, "gaps", gaps, toSpans(tc.gaps))
			})
		}
	})
}

func checkSpans(t *testing.T, what string, got, want []store.Span) {
	t.Helper()
	show := func(ss []store.Span) string {
		var out []string
		for _, s := range ss {
			out = append(out, fmt.Sprintf("[+%s, +%s)", s.Start.Sub(t0), s.End.Sub(t0)))
		}
		return fmt.Sprint(out)
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Start.Equal(want[i].Start) && got[i].End.Equal(want[i].End)
	}
	if !ok {
		t.Errorf("%s = %s, want %s", what, show(got), show(want))
	}
}

func TestObjectKeys(t *testing.T) {
	ch := uuid.MustParse("0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	other := uuid.MustParse("0195a1b2-c3d4-7e5f-8a9b-ffffffffffff")
	cases := []struct {
		name string
		got  string
		want string
	}{
		{"recording", recording.RecordingKey(ch, other, time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)),
			"recordings/0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/2025/03/04/1741064767890-0195a1b2-c3d4-7e5f-8a9b-ffffffffffff.mp4"},
		// The date folders are the UTC date, not the caller's local one.
		{"recording, local start on another day", recording.RecordingKey(ch, other,
			time.Date(2024, 12, 31, 23, 30, 0, 0, time.FixedZone("EST", -5*3600))),
			"recordings/0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/2025/01/01/1735705800000-0195a1b2-c3d4-7e5f-8a9b-ffffffffffff.mp4"},
		{"recording, sub-ms start", recording.RecordingKey(ch, other, time.Date(2025, 3, 4, 5, 6, 7, 890_999_999, time.UTC)),
			"recordings/0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/2025/03/04/1741064767890-0195a1b2-c3d4-7e5f-8a9b-ffffffffffff.mp4"},
		{"clip", recording.ClipKey(ch, other), "clips/0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/0195a1b2-c3d4-7e5f-8a9b-ffffffffffff.mp4"},
		{"snapshot", recording.SnapshotKey(ch, other), "snapshots/0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/0195a1b2-c3d4-7e5f-8a9b-ffffffffffff.jpg"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("%s key\n got %s\nwant %s", tc.name, tc.got, tc.want)
		}
	}
}

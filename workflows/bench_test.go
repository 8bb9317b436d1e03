package workflows_test

import (
	"context"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

// Benchmarks run on the dev server with a real worker, on SQLite by default
// (VMS_BENCH_DB=postgres for PostgreSQL). Latencies are reported as
// p50-ms and p99-ms; run them with e.g.
//
//	go test -run '^$' -bench . -benchtime 200x ./workflows/
//	go test -run '^$' -bench ClipThroughput -benchtime 30s ./workflows/

func newBenchCluster(b *testing.B) *cluster {
	b.Helper()
	if os.Getenv("VMS_BENCH_DB") == "postgres" {
		return newClusterOn(b, newWorldOn(b, storetest.Open(b, "postgres")))
	}
	return newCluster(b)
}

func benchWorkerOptions() worker.Options {
	return worker.Options{
		MaxConcurrentWorkflowTaskPollers: 4,
		MaxConcurrentActivityTaskPollers: 4,
		DisableEagerActivities:           os.Getenv("NOEAGER") == "1",
	}
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	at := func(p int) float64 {
		return float64(l.d[min(len(l.d)-1, len(l.d)*p/100)].Microseconds()) / 1000
	}
	b.ReportMetric(at(50), "p50-ms")
	b.ReportMetric(at(99), "p99-ms")
	b.ReportMetric(0, "ns/op") // per-op time is meaningless here: latencies are
}

// A clip over a past hour with 120 recordings of 30 s (real segments: one
// segment's bytes uploaded under 120 keys): workflow start → gathered,
// assembled into one MP4 (~90 MB read, ~87 MB written) and finished (row
// written), one at a time.
func BenchmarkClipPastHour(b *testing.B) {
	cl := newBenchCluster(b)
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	cl.addRecordings(b, start, 120, 30*time.Second)
	var lat latencies
	b.ResetTimer()
	for range b.N {
		clip := cl.newClip(b, start, start.Add(time.Hour))
		t := time.Now()
		waitRun(b, cl.startClip(b, clip, 2*time.Minute), time.Minute)
		lat.add(time.Since(t))
	}
	b.StopTimer()
	got := cl.clip(b, lastClip(b, cl))
	if got.Status != contract.ClipFinished {
		b.Fatalf("clip = %s", got.Status)
	}
	cl.assertAssembled(b, got)
	lat.report(b)
}

func lastClip(b *testing.B, cl *cluster) uuid.UUID {
	var c store.Clip
	if err := cl.st.DB.NewSelect().Model(&c).Order("id DESC").Limit(1).Scan(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c.ID
}

// Clip workflows started and finished per second, 32 at a time, each over
// a past 10 minutes of 20 recordings (real segments), so each assembles a
// 10-minute MP4.
func BenchmarkClipThroughput(b *testing.B) {
	cl := newBenchCluster(b)
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	cl.addRecordings(b, start, 20, 30*time.Second)
	clips := make(chan *store.Clip, b.N)
	for range b.N {
		clips <- cl.newClip(b, start, start.Add(10*time.Minute))
	}
	close(clips)
	var lat latencies
	var failed atomic.Int64
	b.ResetTimer()
	began := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for clip := range clips {
				t := time.Now()
				run, err := cl.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
					ID: contract.ClipWorkflowID(clip.ID.String()), TaskQueue: cl.tq,
				}, workflows.ClipWorkflow, cl.clipInput(clip, time.Minute))
				if err == nil {
					err = run.Get(context.Background(), nil)
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				lat.add(time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d clips failed", n)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "clips/s")
	lat.report(b)
}

// Segment signal → clip progress updated (as the progress query answers).
// direct: the clip workflow is signalled, as NotifyClips does. via-stream:
// the media worker's report signals the stream workflow, which records the
// segment and notifies the clip.
func BenchmarkSegmentToClipProgress(b *testing.B) {
	for _, via := range []string{"direct", "via-stream"} {
		b.Run(via, func(b *testing.B) {
			cl := newBenchCluster(b)
			ctx := context.Background()
			now := time.Now().Truncate(time.Second)
			seg := 100 * time.Millisecond
			clip := cl.newClip(b, now, now.Add(time.Duration(b.N+1)*seg))
			cl.startClip(b, clip, time.Minute)
			session := uuid.New()
			if via == "via-stream" {
				if _, err := cl.authorize(ctx, session, time.Hour); err != nil {
					b.Fatal(err)
				}
				cl.signalStream(b, session, contract.SignalStarted, nil)
			}
			var lat latencies
			b.ResetTimer()
			for i := range b.N {
				rep := cl.segment(session, now.Add(time.Duration(i)*seg), seg)
				t := time.Now()
				if via == "direct" {
					r := &store.Recording{ChannelID: cl.ch.ID, SessionID: session, Key: rep.Key, Start: rep.Start, End: rep.End,
						DurationMS: rep.DurationMS, Size: rep.Size, Codec: rep.Codec}
					if _, err := cl.st.AddRecording(ctx, r); err != nil {
						b.Fatal(err)
					}
					t = time.Now() // from the signal, not the insert
					err := cl.c.SignalWorkflow(ctx, contract.ClipWorkflowID(clip.ID.String()), "", contract.SignalSegment,
						contract.SegmentSignal{RecordingID: r.ID.String(), Start: r.Start, End: r.End})
					if err != nil {
						b.Fatal(err)
					}
				} else {
					cl.signalStream(b, session, contract.SignalSegment, rep)
				}
				deadline := time.Now().Add(10 * time.Second)
				for cl.clipProgress(b, clip.ID).Segments < i+1 {
					if time.Now().After(deadline) {
						b.Fatalf("segment %d not in the clip's progress after 10 s", i)
					}
					time.Sleep(time.Millisecond)
				}
				lat.add(time.Since(t))
			}
			b.StopTimer()
			lat.report(b)
		})
	}
}

package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/uptrace/bun"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/media/mediatest"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/recording/recordingtest"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

// Benchmarks of the media path (docs/benchmarks.md has the figures). Each
// iteration is a fixed, bounded run whatever b.N, so run them with
// -benchtime 1x:
//
//	go test ./e2e/ -run '^$' -bench Ingest -benchtime 1x
//	go test ./e2e/ -run '^$' -bench SegmentPublishLag -benchtime 1x
//	go test ./e2e/ -run '^$' -bench ClipAssembly4Mbps -benchtime 1x
//
// Knobs: VMS_BENCH_STREAMS (ingest stream counts, default 100),
// VMS_BENCH_WINDOW (measured window, default 20s), VMS_BENCH_UPLOAD=discard
// (ingest without S3 uploads), VMS_BENCH_LAG (publish-lag cases,
// segment@rate, e.g. demo-4s@20,4mbps-30s@2).

func envInts(tb testing.TB, name, def string) []int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	var out []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			tb.Fatalf("%s=%q: want positive integers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out
}

func envDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("%s=%q: want a duration like 20s", name, v)
	}
	return d
}

// sample4Mbps encodes 10 s of 1280x720, 25 fps H.264 at ~4 Mbit/s
// (testsrc2 with temporal noise, which x264 cannot squeeze below the
// target) with a keyframe every 2 s, into a temp folder, and loads it.
func sample4Mbps(tb testing.TB) (media.Track, []media.Frame) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "4mbps.h264")
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25,noise=alls=16:allf=t", "-t", "10",
		"-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "main", "-pix_fmt", "yuv420p",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-bf", "0",
		"-b:v", "4M", "-maxrate", "4M", "-bufsize", "4M",
		"-x264-params", "repeat-headers=1", "-bsf:v", "filter_units=remove_types=6", "-f", "h264", path).CombinedOutput()
	if err != nil {
		tb.Fatalf("ffmpeg: %v: %s", err, out)
	}
	track, frames, err := media.ReadH264File(path, 25)
	if err != nil {
		tb.Fatal(err)
	}
	var bytes int
	for _, f := range frames {
		bytes += len(f.Payload)
	}
	tb.Logf("sample: %d frames, %.2f Mbit/s", len(frames), float64(bytes*8)/(float64(len(frames))/25)/1e6)
	return track, frames
}

// frameDuration is the frame interval of the samples (25 fps).
const frameDuration = 40 * time.Millisecond

// BenchmarkIngest: N simulated agents on loopback each push a real-time
// ~4 Mbit/s H.264 stream (real frames, looped) to ONE media worker, a child
// process of its own, which segments them (10 s segments), spools them and
// uploads them to the embedded S3. The control plane is stubbed (one
// authorize per stream is all it would see in the window). CPU and memory
// are the worker process's own, over a window after a warm-up.
func BenchmarkIngest(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc")
	}
	mediatest.Require(b)
	track, frames := sample4Mbps(b)
	_, s3cfg := s3test.Start(b)
	window := envDuration(b, "VMS_BENCH_WINDOW", 20*time.Second)
	discard := os.Getenv("VMS_BENCH_UPLOAD") == "discard"
	for _, n := range envInts(b, "VMS_BENCH_STREAMS", "100") {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			var r ingestResult
			for range b.N {
				cfg := workerConfig{Name: "bench", Addr: freeAddr(b), DataDir: b.TempDir(), Segment: 10 * time.Second,
					S3: s3cfg, StubControl: true, DiscardUploads: discard}
				r = runIngest(b, cfg, n, window, track, frames)
			}
			workerCores := r.worker.Seconds() / r.window.Seconds()
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(n)/workerCores, "streams/core")
			b.ReportMetric(100*workerCores/float64(n), "worker-%cpu/stream")
			b.ReportMetric(float64(r.rssEnd-r.rssIdle)/float64(n)/(1<<20), "worker-MB/stream")
			b.ReportMetric(workerCores, "worker-cores")
			b.ReportMetric(r.senders.Seconds()/r.window.Seconds(), "senders-cores")
			b.ReportMetric(r.s3.Seconds()/r.window.Seconds(), "s3-cores")
			b.ReportMetric(100*r.machineBusy, "machine-busy-%")
			b.ReportMetric(float64(r.maxLate.Milliseconds()), "max-late-ms")
			b.ReportMetric(float64(r.backlog), "spool-backlog")
			b.ReportMetric(float64(r.backlogMax), "spool-backlog-max")
			b.Logf("%d streams for %s: worker %.2f cores (%.1f streams/core), RSS %.0f MB idle → %.0f MB (peak %.0f MB), "+
				"senders %.2f cores, S3 %.2f cores, machine %.0f%% busy; %d frames sent, latest frame %s behind schedule, %d streams over 1 s late; "+
				"%d segments waiting in the spool (at most %d)",
				n, r.window, workerCores, float64(n)/workerCores, mb(r.rssIdle), mb(r.rssEnd), mb(r.rssPeak),
				r.senders.Seconds()/r.window.Seconds(), r.s3.Seconds()/r.window.Seconds(), 100*r.machineBusy,
				r.frames, r.maxLate.Round(time.Millisecond), r.lateStreams, r.backlog, r.backlogMax)
		})
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

type ingestResult struct {
	window                   time.Duration
	worker, senders, s3      time.Duration // CPU used in the window
	machineBusy              float64       // share of all cores busy in the window
	rssIdle, rssEnd, rssPeak int64         // worker resident memory
	maxLate                  time.Duration // the latest a frame was sent after its due time
	lateStreams              int           // streams that fell over a second behind
	frames                   uint64
	backlog, backlogMax      int // segments waiting in the spool: at the window's end, at most
}

func runIngest(b *testing.B, cfg workerConfig, n int, window time.Duration, track media.Track, frames []media.Frame) ingestResult {
	p := startWorkerProcess(b, cfg)
	time.Sleep(time.Second)
	var r ingestResult
	r.rssIdle, _, _ = procMemory(p.pid())

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		p.stop()
	}()
	welcomed := make(chan error, n)
	senders := make([]*sender, n)
	for i := range senders {
		s := &sender{url: cfg.url(), track: track, frames: frames}
		senders[i] = s
		// Spread the streams over a segment length, as cameras started at
		// random times are: keyframes and segment cuts do not coincide.
		delay := time.Duration(i) * cfg.Segment / time.Duration(n)
		wg.Go(func() { s.run(ctx, delay, welcomed) })
	}
	for range n {
		if err := <-welcomed; err != nil {
			b.Fatalf("stream refused: %v", err)
		}
	}
	time.Sleep(5 * time.Second) // warm-up: files open, buffers grown
	for _, s := range senders {
		s.maxLate.Store(0)
	}

	s3pids := childrenWithEnv("VMS_S3_CHILD=1")
	cpuOf := func(pids ...int) time.Duration {
		var sum time.Duration
		for _, pid := range pids {
			d, err := procCPU(pid)
			if err != nil {
				b.Fatal(err)
			}
			sum += d
		}
		return sum
	}
	w0, s0, x0 := cpuOf(p.pid()), selfCPU(), cpuOf(s3pids...)
	busy0, total0 := machineCPU()
	start := time.Now()
	for time.Since(start) < window {
		time.Sleep(250 * time.Millisecond)
		rss, _, err := procMemory(p.pid())
		if err != nil {
			b.Fatalf("media worker gone: %v", err)
		}
		r.rssPeak = max(r.rssPeak, rss)
		r.backlogMax = max(r.backlogMax, len(spooledKeys(b, cfg.spoolDir())))
	}
	r.window = time.Since(start)
	r.worker, r.senders, r.s3 = cpuOf(p.pid())-w0, selfCPU()-s0, cpuOf(s3pids...)-x0
	busy1, total1 := machineCPU()
	if total1 > total0 {
		r.machineBusy = float64(busy1-busy0) / float64(total1-total0)
	}
	r.rssEnd, _, _ = procMemory(p.pid())
	r.backlog = len(spooledKeys(b, cfg.spoolDir()))
	for _, s := range senders {
		late := time.Duration(s.maxLate.Load())
		r.maxLate = max(r.maxLate, late)
		if late > time.Second {
			r.lateStreams++
		}
		r.frames += s.sent.Load()
		if err := s.failure(); err != nil {
			b.Errorf("stream failed: %v", err)
		}
	}
	return r
}

// sender is a simulated agent: it streams the sample, looped, in real time.
type sender struct {
	url    string
	track  media.Track
	frames []media.Frame

	maxLate atomic.Int64 // nanoseconds
	sent    atomic.Uint64
	mu      sync.Mutex
	err     error
}

func (s *sender) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *sender) run(ctx context.Context, delay time.Duration, welcomed chan<- error) {
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		welcomed <- ctx.Err()
		return
	case <-timer.C:
	}
	conn, welcome, err := s.connect(ctx)
	welcomed <- err
	if err != nil {
		return
	}
	defer conn.Close()
	_ = welcome
	go func() { // the worker sends nothing but control frames
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	period := time.Duration(len(s.frames)) * frameDuration
	start := time.Now()
	var buf []byte
	for i := 0; ; i++ {
		f := s.frames[i%len(s.frames)]
		shift := time.Duration(i/len(s.frames)) * period
		due := start.Add(shift + f.DTS)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if late := int64(-wait); late > s.maxLate.Load() {
			s.maxLate.Store(late)
		}
		f.DTS += shift
		f.PTS += shift
		f.Wall = time.Now()
		buf = media.AppendFrame(buf[:0], f)
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := conn.WriteMessage(websocket.BinaryMessage, buf); err != nil {
			if ctx.Err() == nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
			return
		}
		s.sent.Add(1)
	}
}

func (s *sender) connect(ctx context.Context) (*websocket.Conn, media.Welcome, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(ctx, s.url, nil)
	if err != nil {
		return nil, media.Welcome{}, err
	}
	resp.Body.Close()
	hello, _ := json.Marshal(media.Hello{Version: media.ProtocolVersion, Token: "bench", Tracks: []media.Track{s.track}})
	if err := conn.WriteMessage(websocket.TextMessage, hello); err != nil {
		conn.Close()
		return nil, media.Welcome{}, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(media.KeepaliveTimeout))
	_, msg, err := conn.ReadMessage()
	var w media.Welcome
	if err == nil {
		err = json.Unmarshal(msg, &w)
	}
	if err != nil {
		conn.Close()
		return nil, w, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, w, nil
}

// BenchmarkSegmentPublishLag: a finished segment handed to the media
// worker's spool (Spool.Add, what the segmenter's OnSegment does) → upload
// to S3 → report to the API → stream workflow → recording row, which the
// API lists. Segments (real fMP4 files: 4 s of the 0.2 Mbit/s demo stream,
// or 30 s of a ~4 Mbit/s 720p stream, 15 MB) arrive at a steady rate over
// many sessions, each with its own channel; a poller notes when each row
// appears (the recordings list reads exactly those rows). Everything runs
// on the one machine: SQLite, the Temporal dev server, the embedded S3.
func BenchmarkSegmentPublishLag(b *testing.B) {
	e := newEnv(b, envConfig{})
	track, frames, err := media.ReadH264File(demoSample, 25)
	if err != nil {
		b.Fatal(err)
	}
	segs := map[string]func() mediaworker.Segment{
		"demo-4s": sync.OnceValue(func() mediaworker.Segment { return recordingtest.CutFile(b, b.TempDir(), track, frames, segmentLength) }),
		"4mbps-30s": sync.OnceValue(func() mediaworker.Segment {
			track, frames := sample4Mbps(b)
			return recordingtest.CutFile(b, b.TempDir(), track, frames, 30*time.Second)
		}),
	}
	control := &mediaworker.APIClient{API: &apiclient.Client{BaseURL: e.apiURL, Key: e.workerKey}, Worker: "bench"}
	if err := control.Register(context.Background(), "bench", "ws://127.0.0.1:1/v1/ingest", 100000); err != nil {
		b.Fatal(err)
	}
	window := envDuration(b, "VMS_BENCH_WINDOW", 20*time.Second)
	cases := os.Getenv("VMS_BENCH_LAG")
	if cases == "" {
		cases = "demo-4s@2,demo-4s@20,demo-4s@50,4mbps-30s@2"
	}
	for _, c := range strings.Split(cases, ",") {
		name, rateStr, _ := strings.Cut(c, "@")
		rate, err := strconv.Atoi(rateStr)
		seg, ok := segs[name]
		if err != nil || rate <= 0 || !ok {
			b.Fatalf("VMS_BENCH_LAG case %q: want <demo-4s|4mbps-30s>@<segments per second>", c)
		}
		b.Run(fmt.Sprintf("%s/rate=%d", name, rate), func(b *testing.B) {
			var lat []time.Duration
			for range b.N {
				lat = runPublishLag(b, e, control, seg(), rate, window)
			}
			slices.Sort(lat)
			at := func(p int) time.Duration { return lat[min(len(lat)-1, len(lat)*p/100)] }
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(at(50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(at(99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
			b.Logf("%d segments of %.1f MB at %d/s: p50 %s, p99 %s, max %s", len(lat), mb(seg().Size), rate,
				at(50).Round(time.Millisecond), at(99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
		})
	}
}

type session struct {
	channel, id string
}

func runPublishLag(b *testing.B, e *env, control *mediaworker.APIClient, seg mediaworker.Segment, rate int, window time.Duration) []time.Duration {
	ctx := context.Background()
	// Each session gets a segment every 2 s, well within the 8 s after
	// which its workflow would call it lost.
	sessions := make([]session, 2*rate)
	for i := range sessions {
		ch := e.addChannel(b, camera{Protocol: store.ProtocolRTSP, URL: "rtsp://127.0.0.1:8554/cam"})
		grant, err := control.Authorize(ctx, e.streamToken(b, "", ch, "high").Token)
		if err != nil {
			b.Fatal(err)
		}
		if err := control.Started(ctx, grant.SessionID); err != nil {
			b.Fatal(err)
		}
		sessions[i] = session{channel: ch, id: grant.SessionID}
	}
	spool := &mediaworker.Spool{Dir: b.TempDir(), Uploader: mediaworker.ObjectUploader{Objects: e.objects}, Control: control}
	sctx, stop := context.WithCancel(ctx)
	spoolDone := make(chan struct{})
	go func() { defer close(spoolDone); _ = spool.Run(sctx) }()
	defer func() { stop(); <-spoolDone }()

	var mu sync.Mutex
	pending := map[string]time.Time{}
	var lat []time.Duration
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			mu.Lock()
			keys := make([]string, 0, len(pending))
			for k := range pending {
				keys = append(keys, k)
			}
			mu.Unlock()
			if len(keys) > 0 {
				var got []string
				err := e.st.DB.NewSelect().Table("recordings").Column("key").Where("key IN (?)", bun.In(keys)).Scan(ctx, &got)
				seen := time.Now()
				if err != nil {
					b.Errorf("poll recordings: %v", err)
					return
				}
				mu.Lock()
				for _, k := range got {
					lat = append(lat, seen.Sub(pending[k]))
					delete(pending, k)
				}
				mu.Unlock()
			}
			select {
			case <-sctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	added := 0
	dir := b.TempDir()
	for began := time.Now(); time.Since(began) < window; added++ {
		<-tick.C
		s := sessions[added%len(sessions)]
		path := filepath.Join(dir, fmt.Sprintf("segment-%d.mp4", added))
		if err := os.Link(seg.Path, path); err != nil {
			b.Fatal(err)
		}
		start := time.Now().Add(-seg.Duration).UTC().Truncate(time.Millisecond)
		rep := recording.SegmentReport{Key: recording.RecordingKey(uuid.MustParse(s.channel), uuid.MustParse(s.id), start),
			Start: start, End: start.Add(seg.Duration), DurationMS: seg.Duration.Milliseconds(), Size: seg.Size, Codec: seg.Codec}
		mu.Lock()
		pending[rep.Key] = time.Now()
		mu.Unlock()
		if err := spool.Add(path, s.id, s.channel, rep); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, "every segment recorded", waitLong, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(pending) == 0
	})
	stop()
	<-pollDone
	listed := 0
	for _, s := range sessions {
		listed += len(e.recordings(b, s.channel))
		_ = control.Stopped(ctx, s.id)
	}
	if listed != added || len(lat) != added {
		b.Fatalf("added %d segments, %d recorded, %d listed by the API", added, len(lat), listed)
	}
	return lat
}

// BenchmarkClipAssembly4Mbps: AssembleClip (the ClipWorkflow's last step,
// called directly) joins a one-hour range of 120 × 30 s recordings of a
// ~4 Mbit/s 720p camera (~1.8 GB) from S3 into one MP4 written back with a
// multipart upload. Time and the Go heap's peak above its level before.
// (The workflows engineer measures the same on the 0.2 Mbit/s demo stream:
// go test ./activities -bench AssembleClip.)
func BenchmarkClipAssembly4Mbps(b *testing.B) {
	mediatest.Require(b)
	if testing.Short() {
		b.Skip("writes ~4 GB")
	}
	ctx := context.Background()
	track, frames := sample4Mbps(b)
	seg := recordingtest.CutFile(b, b.TempDir(), track, frames, 30*time.Second)
	objects, _ := s3test.Start(b)
	st := storetest.Open(b, "sqlite")
	acct, err := st.CreateAccount(ctx, "bench", false)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.UpsertNVR(ctx, &store.NVR{Name: "bench", MediaURL: "ws://127.0.0.1:1/v1/ingest", Capacity: 10}); err != nil {
		b.Fatal(err)
	}
	cam := &store.Camera{AccountID: acct.ID, Name: "bench", Protocol: store.ProtocolRTSP, Host: "127.0.0.1", Port: 554, StreamHigh: "/x"}
	if err := st.CreateCamera(ctx, cam); err != nil {
		b.Fatal(err)
	}
	ch := &store.Channel{AccountID: acct.ID, CameraID: cam.ID, RetentionDays: 1}
	if err := st.CreateChannel(ctx, ch); err != nil {
		b.Fatal(err)
	}
	// One segment file uploaded under 120 keys: a segment's bytes do not
	// depend on its wall-clock start, which the recording row carries.
	base := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	sessionID := uuid.New()
	for i := range 120 {
		at := base.Add(time.Duration(i) * seg.Duration)
		key := recording.RecordingKey(ch.ID, sessionID, at)
		f, err := os.Open(seg.Path)
		if err != nil {
			b.Fatal(err)
		}
		err = objects.Put(ctx, key, f, seg.Size, "video/mp4")
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		r := &store.Recording{ChannelID: ch.ID, SessionID: sessionID, Key: key, Start: at, End: at.Add(seg.Duration),
			DurationMS: seg.Duration.Milliseconds(), Size: seg.Size, Codec: seg.Codec}
		if _, err := st.AddRecording(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	acts := &activities.Activities{Store: st, Objects: objects}
	var res activities.AssembleResult
	var elapsed time.Duration
	var peak uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		clip := &store.Clip{AccountID: acct.ID, ChannelID: ch.ID, Start: base, End: base.Add(time.Hour)}
		if err := st.CreateClip(ctx, clip); err != nil {
			b.Fatal(err)
		}
		if _, err := acts.AppendClipRecordings(ctx, clip.ID.String()); err != nil {
			b.Fatal(err)
		}
		stopSampling := sampleHeap(&peak)
		b.StartTimer()
		began := time.Now()
		res, err = acts.AssembleClip(ctx, clip.ID.String())
		elapsed = time.Since(began)
		b.StopTimer()
		stopSampling()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(elapsed.Seconds(), "s/clip")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(res.Size)/(1<<20)/elapsed.Seconds(), "MB/s")
	b.Logf("one-hour clip of 120 × %s segments (%.0f MB each): %s, %.0f MB written (%.0f MB/s), heap peak +%.0f MB",
		seg.Duration, mb(seg.Size), elapsed.Round(10*time.Millisecond), mb(res.Size),
		float64(res.Size)/(1<<20)/elapsed.Seconds(), float64(peak)/(1<<20))

	// The clip is one MP4 of the requested hour (up to one GOP).
	rc, _, err := objects.Get(ctx, res.ObjectKey)
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	path := filepath.Join(b.TempDir(), "clip.mp4")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	_, err = f.ReadFrom(rc)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	if d := probeVideo(b, path).Duration(); d < time.Hour-frameDuration || d > time.Hour+demoGOP {
		b.Errorf("clip lasts %s, want 1h up to one GOP", d)
	}
}

// sampleHeap records, until the returned func is called, the highest Go
// heap in use above its level now (after a GC), into peak.
func sampleHeap(peak *uint64) (stop func()) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	*peak = 0
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > *peak {
				*peak = ms.HeapInuse - base
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

package mediaworker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/opennvr/vms/agent"
	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/democam"
	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/media/mediatest"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
)

const demoSample = "../testdata/demo.h264"

// wallStart is the capture time of the first frame the tests send.
var wallStart = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// ingest is a media worker under test: the ingest server on 127.0.0.1,
// its spool uploading to the embedded S3 and reporting to control.
type ingest struct {
	control *fakeControl
	objects *objectstore.Client
	spool   *mediaworker.Spool
	server  *mediaworker.Server
	url     string // ws://.../v1/ingest
}

func startIngest(t *testing.T, control *fakeControl, segment time.Duration) *ingest {
	t.Helper()
	objects, _ := s3test.Start(t)
	sp := newSpool(t, t.TempDir(), mediaworker.ObjectUploader{Objects: objects}, control)
	sp.WorkDir = t.TempDir()
	runSpool(t, sp)
	srv := &mediaworker.Server{Control: control, Spool: sp, SegmentLength: segment, Logger: testLogger(t)}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	// Every stream handler must end once its connection is gone.
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("stream handlers still running after the test")
		}
	})
	return &ingest{control: control, objects: objects, spool: sp, server: srv, url: "ws" + strings.TrimPrefix(ts.URL, "http") + "/v1/ingest"}
}

func (in *ingest) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(t.Context(), in.url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", in.url, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { conn.Close() })
	return conn
}

// connect opens a stream from an agent whose clock is right: hello, then
// the worker's Welcome.
func (in *ingest) connect(t *testing.T, token string, tracks ...media.Track) (*websocket.Conn, media.Welcome) {
	t.Helper()
	return in.connectHello(t, media.Hello{Version: media.ProtocolVersion, Token: token, Tracks: tracks, Clock: time.Now().UnixNano()})
}

// connectHello opens a stream with h.
func (in *ingest) connectHello(t *testing.T, h media.Hello) (*websocket.Conn, media.Welcome) {
	t.Helper()
	conn := in.dial(t)
	hello, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	write(t, conn, websocket.TextMessage, hello)
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	typ, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("await welcome: %v", err)
	}
	var w media.Welcome
	if typ != websocket.TextMessage {
		t.Fatalf("worker answered the hello with message type %d, want text", typ)
	}
	if err := json.Unmarshal(msg, &w); err != nil {
		t.Fatalf("decode welcome %q: %v", msg, err)
	}
	return conn, w
}

func write(t *testing.T, conn *websocket.Conn, typ int, msg []byte) {
	t.Helper()
	conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := conn.WriteMessage(typ, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func sendFrames(t *testing.T, conn *websocket.Conn, frames []media.Frame) {
	t.Helper()
	for _, f := range frames {
		write(t, conn, websocket.BinaryMessage, media.MarshalFrame(f))
	}
}

// closeCode reads until the worker closes the stream and returns its code.
func closeCode(t *testing.T, conn *websocket.Conn) int {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, msg, err := conn.ReadMessage()
		if err == nil {
			t.Errorf("unexpected message from the worker: %q", msg)
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("stream ended without a close frame: %v", err)
		}
		return ce.Code
	}
}

// stopStream ends a stream the way an agent does.
func stopStream(t *testing.T, conn *websocket.Conn) {
	t.Helper()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "stream stopped")
	if err := conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(waitTimeout)); err != nil {
		t.Fatalf("send close: %v", err)
	}
	if code := closeCode(t, conn); code != websocket.CloseNormalClosure {
		t.Fatalf("worker closed with %d, want %d", code, websocket.CloseNormalClosure)
	}
}

// waitStopped waits until the session is reported stopped and its last
// segment has left the spool.
func (in *ingest) waitStopped(t *testing.T, sessionID string) {
	t.Helper()
	in.control.waitFor(t, "session "+sessionID+" stopped", func() bool { return in.control.count("stopped "+sessionID) > 0 })
	drain(t, in.spool)
}

// demoFrames returns the demo sample looped to length d, sent at 25 fps
// and captured from wallStart on. (The tests send them at once: the agent
// replays old footage with a clock that is right.)
func demoFrames(t *testing.T, d time.Duration) (media.Track, []media.Frame) {
	t.Helper()
	track, sample, err := media.ReadH264File(demoSample, 25)
	if err != nil {
		t.Fatal(err)
	}
	step := sample[1].DTS - sample[0].DTS
	period := time.Duration(len(sample)) * step
	var frames []media.Frame
	for off := time.Duration(0); off < d; off += period {
		for _, f := range sample {
			if off+f.DTS >= d {
				break
			}
			f.DTS += off
			f.PTS += off
			f.Wall = wallStart.Add(f.DTS)
			frames = append(frames, f)
		}
	}
	return track, frames
}

// probe decodes the stored object at key with ffprobe and returns its
// codec and decoded frame count.
func probe(t *testing.T, objects *objectstore.Client, key string) (codec string, frames int) {
	t.Helper()
	path := download(t, objects, key)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,nb_read_frames", "-of", "default=noprint_wrappers=1", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffprobe %s: %v: %s", key, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("ffprobe %s reports decode errors:\n%s", key, stderr.String())
	}
	for line := range strings.Lines(stdout.String()) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "codec_name":
			codec = v
		case "nb_read_frames":
			frames, _ = strconv.Atoi(v)
		}
	}
	return codec, frames
}

// download copies the stored object at key to a file.
func download(t *testing.T, objects *objectstore.Client, key string) string {
	t.Helper()
	rc, _, err := objects.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	path := filepath.Join(t.TempDir(), "segment.mp4")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatalf("download %s: %v", key, err)
	}
	return path
}

// wantSegment is what a reported segment must be.
type wantSegment struct {
	start  time.Duration // after wallStart
	dur    time.Duration
	frames int
}

// checkSegments compares the session's recorded segments with want and
// checks each stored object: reported size, and it decodes.
func (in *ingest) checkSegments(t *testing.T, g recording.Grant, want []wantSegment) {
	t.Helper()
	got := in.control.accepted(g.SessionID)
	if len(got) != len(want) {
		t.Fatalf("control plane recorded %d segments, want %d: %+v", len(got), len(want), got)
	}
	channel, session := uuid.MustParse(g.ChannelID), uuid.MustParse(g.SessionID)
	for i, r := range got {
		w := want[i]
		start := wallStart.Add(w.start)
		if key := recording.RecordingKey(channel, session, start); r.Key != key {
			t.Errorf("segment %d key = %s, want %s", i, r.Key, key)
		}
		if !r.Start.Equal(start) || !r.End.Equal(start.Add(w.dur)) || r.DurationMS != w.dur.Milliseconds() || r.Codec != media.CodecH264 {
			t.Errorf("segment %d = %s..%s (%d ms, %s), want %s..%s (%d ms, h264)", i,
				r.Start, r.End, r.DurationMS, r.Codec, start, start.Add(w.dur), w.dur.Milliseconds())
		}
		info, err := in.objects.Head(t.Context(), r.Key)
		if err != nil {
			t.Errorf("segment %d not in S3: %v", i, err)
			continue
		}
		if r.Size <= 0 || info.Size != r.Size {
			t.Errorf("segment %d: reported %d bytes, S3 holds %d", i, r.Size, info.Size)
		}
		// The object carries its report, for the control plane's S3 event
		// reconciler to find when the notification is lost.
		if md, ok := recording.SegmentReportFromMetadata(r.Key, info.Size, info.Metadata); !ok ||
			!md.Start.Equal(r.Start) || !md.End.Equal(r.End) || md.DurationMS != r.DurationMS || md.Codec != r.Codec {
			t.Errorf("segment %d: metadata %v reads as %+v (ok %v), want the report %+v", i, info.Metadata, md, ok, r)
		}
		if codec, frames := probe(t, in.objects, r.Key); codec != "h264" || frames != w.frames {
			t.Errorf("segment %d decodes as %q with %d frames, want h264 with %d", i, codec, frames, w.frames)
		}
	}
}

// checkSessionCalls checks that the session was started before it was
// stopped, and stopped once. Every closed segment but the last flushed one
// repeats the started report as a heartbeat (asynchronously, so only the
// first is ordered against the stop).
func (in *ingest) checkSessionCalls(t *testing.T, sessionID string) {
	t.Helper()
	started, stopped := in.control.count("started "+sessionID), in.control.count("stopped "+sessionID)
	segments := 0
	for _, call := range in.control.callLog() {
		if strings.HasPrefix(call, "segment ") && strings.Contains(call, sessionID) {
			segments++
		}
	}
	if started < 1 || started > segments+1 || stopped != 1 {
		t.Errorf("session reported started %d times and stopped %d times (%d segments), want 1..%d and 1",
			started, stopped, segments, segments+1)
	}
	if in.control.callIndex("started "+sessionID) > in.control.callIndex("stopped "+sessionID) {
		t.Error("session reported stopped before started")
	}
}

func TestIngestRecordsSegments(t *testing.T) {
	mediatest.Require(t)
	control := newFakeControl()
	in := startIngest(t, control, 30*time.Second)
	g := control.grant("token-1")
	track, frames := demoFrames(t, 70*time.Second)

	conn, welcome := in.connect(t, "token-1", track)
	if welcome.SessionID != g.SessionID || welcome.SegmentSeconds != 30 {
		t.Errorf("welcome = %+v, want session %s, 30 s segments", welcome, g.SessionID)
	}
	sendFrames(t, conn, frames)
	stopStream(t, conn)
	in.waitStopped(t, g.SessionID)

	// Two full segments cut at the keyframe at 30 s and 60 s, and the
	// 10 s left when the stream stopped.
	in.checkSegments(t, g, []wantSegment{
		{start: 0, dur: 30 * time.Second, frames: 750},
		{start: 30 * time.Second, dur: 30 * time.Second, frames: 750},
		{start: 60 * time.Second, dur: 10 * time.Second, frames: 250},
	})
	in.checkSessionCalls(t, g.SessionID)
	assertDirEntries(t, in.spool.Dir)
	assertDirEntries(t, in.spool.WorkDir)
}

func TestIngestRefusesStream(t *testing.T) {
	track, _ := demoFrames(t, time.Second)
	hello := func(h media.Hello) []byte {
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name         string
		authorizeErr error
		typ          int
		hello        []byte
		wantCode     int
		wantAuth     string // the token that reached the control plane
	}{
		{name: "unknown token", typ: websocket.TextMessage, wantAuth: "stolen", wantCode: media.CloseBadToken,
			hello: hello(media.Hello{Version: media.ProtocolVersion, Token: "stolen", Tracks: []media.Track{track}})},
		{name: "control plane down", typ: websocket.TextMessage, wantAuth: "token-1", wantCode: websocket.CloseTryAgainLater,
			authorizeErr: &apiclient.Error{Status: http.StatusServiceUnavailable},
			hello:        hello(media.Hello{Version: media.ProtocolVersion, Token: "token-1", Tracks: []media.Track{track}})},
		{name: "not json", typ: websocket.TextMessage, wantCode: media.CloseBadHello,
			hello: []byte("hello worker")},
		{name: "binary hello", typ: websocket.BinaryMessage, wantCode: media.CloseBadHello,
			hello: hello(media.Hello{Version: media.ProtocolVersion, Token: "token-1", Tracks: []media.Track{track}})},
		{name: "wrong version", typ: websocket.TextMessage, wantCode: media.CloseUnsupportedVersion,
			hello: hello(media.Hello{Version: media.ProtocolVersion + 1, Token: "token-1", Tracks: []media.Track{track}})},
		{name: "no tracks", typ: websocket.TextMessage, wantCode: media.CloseBadHello,
			hello: hello(media.Hello{Version: media.ProtocolVersion, Token: "token-1"})},
		{name: "empty token", typ: websocket.TextMessage, wantCode: media.CloseBadHello,
			hello: hello(media.Hello{Version: media.ProtocolVersion, Tracks: []media.Track{track}})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			control := newFakeControl()
			control.authorizeErr = tc.authorizeErr
			g := control.grant("token-1")
			in := startIngest(t, control, 30*time.Second)

			conn := in.dial(t)
			write(t, conn, tc.typ, tc.hello)
			if code := closeCode(t, conn); code != tc.wantCode {
				t.Errorf("worker closed with %d, want %d", code, tc.wantCode)
			}
			drain(t, in.spool)
			calls := control.callLog()
			var want []string
			if tc.wantAuth != "" {
				want = []string{"authorize " + tc.wantAuth}
			}
			if !slices.Equal(calls, want) {
				t.Errorf("control plane calls = %q, want %q", calls, want)
			}
			if got := control.accepted(g.SessionID); len(got) != 0 {
				t.Errorf("refused stream recorded segments: %+v", got)
			}
			assertDirEntries(t, in.spool.WorkDir)
		})
	}
}

// A stream that breaks the protocol after the Welcome is closed with
// CloseBadFrame; what it sent before is kept.
func TestIngestClosesBadStream(t *testing.T) {
	mediatest.Require(t)
	// 2 s GOPs. The agent resumes a stream the worker closed from its last
	// keyframe sent, so the worker records up to the last keyframe.
	track, frames := demoFrames(t, 4*time.Second)
	good := frames[:75]
	badAVCC := frames[75]
	badAVCC.Payload = []byte{0, 0, 0, 9, 0x65}
	unknownTrack := frames[75]
	unknownTrack.Track = 7
	marshal := func(f media.Frame) []byte { return media.MarshalFrame(f) }
	corrupt := func(f media.Frame, edit func([]byte) []byte) []byte { return edit(media.MarshalFrame(f)) }
	tests := []struct {
		name string
		typ  int
		msg  []byte
	}{
		{name: "text message", typ: websocket.TextMessage, msg: []byte(`{"frame":1}`)},
		{name: "bad magic", typ: websocket.BinaryMessage, msg: corrupt(frames[75], func(b []byte) []byte { b[0] = 0xF2; return b })},
		{name: "truncated", typ: websocket.BinaryMessage, msg: corrupt(frames[75], func(b []byte) []byte { return b[:len(b)-1] })},
		{name: "short header", typ: websocket.BinaryMessage, msg: []byte{media.FrameMagic, 0, 1}},
		{name: "unknown track", typ: websocket.BinaryMessage, msg: marshal(unknownTrack)},
		{name: "dts goes back", typ: websocket.BinaryMessage, msg: marshal(frames[10])},
		{name: "bad avcc payload", typ: websocket.BinaryMessage, msg: marshal(badAVCC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			control := newFakeControl()
			in := startIngest(t, control, 30*time.Second)
			g := control.grant("token-1")
			conn, _ := in.connect(t, "token-1", track)
			sendFrames(t, conn, good)
			write(t, conn, tc.typ, tc.msg)
			if code := closeCode(t, conn); code != media.CloseBadFrame {
				t.Errorf("worker closed with %d, want %d (CloseBadFrame)", code, media.CloseBadFrame)
			}
			in.waitStopped(t, g.SessionID)
			in.checkSegments(t, g, []wantSegment{{start: 0, dur: 2 * time.Second, frames: 50}})
			in.checkSessionCalls(t, g.SessionID)
		})
	}
}

// One agent sending garbage must not disturb the other streams.
func TestIngestBadFrameClosesOnlyThatStream(t *testing.T) {
	mediatest.Require(t)
	control := newFakeControl()
	in := startIngest(t, control, 30*time.Second)
	ga, gb := control.grant("token-a"), control.grant("token-b")
	track, frames := demoFrames(t, 70*time.Second)
	half := len(frames) / 2

	a, _ := in.connect(t, "token-a", track)
	b, _ := in.connect(t, "token-b", track)
	sendFrames(t, b, frames[:half])
	sendFrames(t, a, frames[:75])
	write(t, a, websocket.BinaryMessage, []byte("not a frame"))
	if code := closeCode(t, a); code != media.CloseBadFrame {
		t.Errorf("stream a closed with %d, want %d (CloseBadFrame)", code, media.CloseBadFrame)
	}
	in.control.waitFor(t, "stream a stopped", func() bool { return control.count("stopped "+ga.SessionID) > 0 })

	sendFrames(t, b, frames[half:])
	stopStream(t, b)
	in.waitStopped(t, gb.SessionID)

	in.checkSegments(t, ga, []wantSegment{{start: 0, dur: 2 * time.Second, frames: 50}})
	in.checkSegments(t, gb, []wantSegment{
		{start: 0, dur: 30 * time.Second, frames: 750},
		{start: 30 * time.Second, dur: 30 * time.Second, frames: 750},
		{start: 60 * time.Second, dur: 10 * time.Second, frames: 250},
	})
	in.checkSessionCalls(t, ga.SessionID)
	in.checkSessionCalls(t, gb.SessionID)
}

// An agent that vanishes without a close frame (power cut, network gone)
// still gets its last partial segment recorded, up to its last keyframe:
// the agent resumes from there on its next connection (2 s GOP, so 4 s of
// the 5 s are recorded here).
func TestIngestFlushesOnDisconnect(t *testing.T) {
	mediatest.Require(t)
	control := newFakeControl()
	in := startIngest(t, control, 30*time.Second)
	g := control.grant("token-1")
	track, frames := demoFrames(t, 5*time.Second)

	conn, _ := in.connect(t, "token-1", track)
	sendFrames(t, conn, frames)
	if err := conn.NetConn().Close(); err != nil {
		t.Fatal(err)
	}
	in.waitStopped(t, g.SessionID)

	in.checkSegments(t, g, []wantSegment{{start: 0, dur: 4 * time.Second, frames: 100}})
	in.checkSessionCalls(t, g.SessionID)
	assertDirEntries(t, in.spool.Dir)
	assertDirEntries(t, in.spool.WorkDir)
}

// The agent's real Pusher, pulling the demo RTSP camera, records through
// the worker; a token the control plane refuses stops it for good.
func TestIngestFromAgent(t *testing.T) {
	mediatest.Require(t)
	cam, err := democam.Start(t.Context(), "127.0.0.1:0", "/live", demoSample, democam.WithFPS(250), democam.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("demo camera: %v", err)
	}
	t.Cleanup(cam.Close)
	control := newFakeControl()
	in := startIngest(t, control, 30*time.Second)

	// runPusher runs a Pusher for token until stop; wait returns Run's error.
	runPusher := func(token string) (p *agent.Pusher, stop context.CancelFunc, wait func() error) {
		p = &agent.Pusher{
			Source: &agent.RTSPSource{URL: cam.URL(), Logger: testLogger(t)},
			Tokens: func(context.Context) (string, string, error) { return token, in.url, nil },
			Logger: testLogger(t), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var err error
		go func() {
			defer close(done)
			err = p.Run(ctx)
		}()
		wait = func() error {
			select {
			case <-done:
				return err
			case <-time.After(waitTimeout):
				t.Fatal("pusher still running")
				return nil
			}
		}
		t.Cleanup(func() {
			cancel()
			<-done
		})
		return p, cancel, wait
	}

	t.Run("records", func(t *testing.T) {
		// The grant's segment length wins over the worker's default. At
		// 250 fps the sample has a keyframe every 200 ms.
		g := control.grant("agent-token")
		g.SegmentSeconds = 1
		control.setGrant("agent-token", g)

		p, stop, wait := runPusher("agent-token")
		control.waitFor(t, "2 segments", func() bool { return len(control.accepted(g.SessionID)) >= 2 })
		stop()
		if err := wait(); !errors.Is(err, context.Canceled) {
			t.Errorf("pusher Run = %v, want context.Canceled", err)
		}
		in.waitStopped(t, g.SessionID)

		if st := p.Status(); st.WorkerSessionID != g.SessionID || st.Attempts != 1 {
			t.Errorf("pusher status = %+v, want one attempt in session %s", st, g.SessionID)
		}
		got := control.accepted(g.SessionID)
		for i, r := range got {
			last := i == len(got)-1
			if !last && (r.DurationMS < 1000 || r.DurationMS > 1400) {
				t.Errorf("segment %d lasts %d ms, want 1 s up to the next keyframe", i, r.DurationMS)
			}
			if codec, frames := probe(t, in.objects, r.Key); codec != "h264" || frames == 0 {
				t.Errorf("segment %d decodes as %q with %d frames", i, codec, frames)
			}
			if i > 0 && r.Start.Before(got[i-1].End.Add(-100*time.Millisecond)) {
				t.Errorf("segment %d starts at %s, before segment %d ends at %s", i, r.Start, i-1, got[i-1].End)
			}
		}
		in.checkSessionCalls(t, g.SessionID)
	})

	t.Run("refused", func(t *testing.T) {
		_, _, wait := runPusher("revoked-token")
		var rej *agent.RejectedError
		if err := wait(); !errors.As(err, &rej) || rej.Code != media.CloseBadToken {
			t.Errorf("pusher Run = %v, want RejectedError with code %d", err, media.CloseBadToken)
		}
		if n := control.count("authorize revoked-token"); n != 1 {
			t.Errorf("token tried %d times, want 1", n)
		}
	})
}

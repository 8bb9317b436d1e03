package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/opennvr/vms/media"
)

// fakeSource produces a synthetic stream: one track, a keyframe every gop
// frames, a frame every interval.
type fakeSource struct {
	interval time.Duration
	gop      int
	runs     atomic.Int32
}

func (s *fakeSource) Run(ctx context.Context, onTracks func([]media.Track) error, onFrame func(media.Frame) error) error {
	s.runs.Add(1)
	if err := onTracks([]media.Track{{ID: 0, Codec: media.CodecMJPEG, ClockRate: 90000}}); err != nil {
		return err
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for i := 0; ; i++ {
		f := media.Frame{
			Keyframe: i%s.gop == 0,
			DTS:      time.Duration(i) * s.interval,
			PTS:      time.Duration(i) * s.interval,
			Wall:     time.Now(),
			Payload:  []byte{0xff, 0xd8, byte(i), 0xff, 0xd9},
		}
		if err := onFrame(f); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// tokenCounter is a TokenSource handing out tok-1, tok-2, … for one URL.
type tokenCounter struct {
	url string
	n   atomic.Int32
}

func (c *tokenCounter) source(context.Context) (string, string, error) {
	return fmt.Sprintf("tok-%d", c.n.Add(1)), c.url, nil
}

// wsConn is what the fake worker saw on one connection.
type wsConn struct {
	hello  media.Hello
	frames []media.Frame
	close  *websocket.CloseError
}

// fakeWorker is an httptest WebSocket server; behave decides, per
// connection (numbered from 1), what to do after reading the hello.
type fakeWorker struct {
	srv    *httptest.Server
	mu     sync.Mutex
	conns  []*wsConn
	notify chan struct{}
}

func newFakeWorker(t *testing.T, behave func(n int, c *websocket.Conn, seen *wsConn, w *fakeWorker)) *fakeWorker {
	t.Helper()
	w := &fakeWorker{notify: make(chan struct{}, 1000)}
	up := websocket.Upgrader{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(rw, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		typ, msg, err := c.ReadMessage()
		if err != nil || typ != websocket.TextMessage {
			t.Errorf("first message: type %d err %v, want text hello", typ, err)
			return
		}
		h, err := media.ReadHello(msg)
		if err != nil {
			t.Errorf("hello: %v", err)
			return
		}
		seen := &wsConn{hello: h}
		w.mu.Lock()
		w.conns = append(w.conns, seen)
		n := len(w.conns)
		w.mu.Unlock()
		w.ping()
		behave(n, c, seen, w)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *fakeWorker) url() string { return "ws" + strings.TrimPrefix(w.srv.URL, "http") + "/ingest" }

func (w *fakeWorker) ping() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *fakeWorker) snapshot() []wsConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]wsConn, len(w.conns))
	for i, c := range w.conns {
		out[i] = *c
		out[i].frames = append([]media.Frame(nil), c.frames...)
	}
	return out
}

// waitFor polls cond on every worker event until it holds.
func (w *fakeWorker) waitFor(t *testing.T, what string, cond func([]wsConn) bool) []wsConn {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if s := w.snapshot(); cond(s) {
			return s
		}
		select {
		case <-w.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; worker saw %d connections", what, len(w.snapshot()))
		}
	}
}

func welcome(c *websocket.Conn, session string) error {
	b, _ := json.Marshal(media.Welcome{SessionID: session, SegmentSeconds: 30})
	return c.WriteMessage(websocket.TextMessage, b)
}

// readFrames records frames until the connection ends or max frames.
func (w *fakeWorker) readFrames(c *websocket.Conn, seen *wsConn, max int) {
	for i := 0; max < 0 || i < max; i++ {
		typ, msg, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				w.mu.Lock()
				seen.close = ce
				w.mu.Unlock()
				w.ping()
			}
			return
		}
		if typ != websocket.BinaryMessage {
			continue
		}
		f, err := media.UnmarshalFrame(msg)
		if err != nil {
			return
		}
		f.Payload = append([]byte(nil), f.Payload...)
		w.mu.Lock()
		seen.frames = append(seen.frames, f)
		w.mu.Unlock()
		w.ping()
	}
}

// runningPusher is a Pusher running in the background for one test.
type runningPusher struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// wait returns Run's result, failing the test if it takes over timeout.
func (r *runningPusher) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(timeout):
		t.Fatal("pusher did not return")
		return nil
	}
}

func runPusher(t *testing.T, p *Pusher) *runningPusher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningPusher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = p.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("pusher did not stop")
		}
	})
	return r
}

func TestPusherHelloThenFrames(t *testing.T) {
	w := newFakeWorker(t, func(_ int, c *websocket.Conn, seen *wsConn, w *fakeWorker) {
		if err := welcome(c, "sess-1"); err != nil {
			return
		}
		w.readFrames(c, seen, -1)
	})
	tokens := &tokenCounter{url: w.url()}
	log, _ := captureLogger()
	p := &Pusher{Source: &fakeSource{interval: 2 * time.Millisecond, gop: 10}, Tokens: tokens.source, Logger: log}
	run := runPusher(t, p)

	conns := w.waitFor(t, "20 frames", func(s []wsConn) bool { return len(s) == 1 && len(s[0].frames) >= 20 })
	h := conns[0].hello
	if h.Version != media.ProtocolVersion || h.Token != "tok-1" || len(h.Tracks) != 1 || h.Tracks[0].Codec != media.CodecMJPEG {
		t.Errorf("hello = %+v", h)
	}
	// The hello carries the agent's clock, for the worker to check.
	if sent := time.Unix(0, h.Clock); h.Clock == 0 || time.Since(sent).Abs() > time.Minute {
		t.Errorf("hello clock = %s, want about now", sent)
	}
	frames := conns[0].frames
	if !frames[0].Keyframe {
		t.Error("first frame is not a keyframe")
	}
	for i := 1; i < len(frames); i++ {
		if frames[i].DTS <= frames[i-1].DTS {
			t.Fatalf("frames out of order at %d", i)
		}
	}
	if st := p.Status(); st.State != PushLive || st.WorkerSessionID != "sess-1" || st.FramesSent == 0 {
		t.Errorf("status = %+v", st)
	}

	run.cancel()
	if err := run.wait(t, 5*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	conns = w.waitFor(t, "close frame", func(s []wsConn) bool { return s[0].close != nil })
	if conns[0].close.Code != websocket.CloseNormalClosure {
		t.Errorf("close code = %d, want %d", conns[0].close.Code, websocket.CloseNormalClosure)
	}
	if n := tokens.n.Load(); n != 1 {
		t.Errorf("TokenSource called %d times, want 1", n)
	}
}

func TestPusherRejected(t *testing.T) {
	tests := []struct {
		name string
		code int
		// midStream closes after a few frames instead of before the welcome.
		midStream bool
	}{
		{name: "bad token", code: media.CloseBadToken},
		{name: "unsupported version", code: media.CloseUnsupportedVersion},
		{name: "session ended mid-stream", code: media.CloseSessionEnded, midStream: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWorker(t, func(_ int, c *websocket.Conn, seen *wsConn, w *fakeWorker) {
				if tc.midStream {
					if welcome(c, "s") != nil {
						return
					}
					w.readFrames(c, seen, 3)
				}
				_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(tc.code, "no"))
				_, _, _ = c.ReadMessage() // the agent's close echo
			})
			tokens := &tokenCounter{url: w.url()}
			log, _ := captureLogger()
			p := &Pusher{Source: &fakeSource{interval: 2 * time.Millisecond, gop: 5}, Tokens: tokens.source, Logger: log,
				MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}
			err := runPusher(t, p).wait(t, 10*time.Second)
			rej, ok := errors.AsType[*RejectedError](err)
			if !ok || rej.Code != tc.code || rej.Reason != "no" {
				t.Fatalf("Run = %v, want RejectedError{%d}", err, tc.code)
			}
			if n := len(w.snapshot()); n != 1 {
				t.Errorf("worker saw %d connections, want 1 (no retry)", n)
			}
			if st := p.Status(); st.State != PushRejected {
				t.Errorf("state = %s, want rejected", st.State)
			}
		})
	}
}

func TestPusherUpgradeRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		http.Error(rw, "bad token", http.StatusUnauthorized)
	}))
	defer srv.Close()
	log, _ := captureLogger()
	tokens := &tokenCounter{url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	p := &Pusher{Source: &fakeSource{interval: time.Millisecond, gop: 5}, Tokens: tokens.source, Logger: log}
	err := p.Run(t.Context())
	if _, ok := errors.AsType[*RejectedError](err); !ok {
		t.Fatalf("Run = %v, want a RejectedError", err)
	}
}

// TestPusherReconnects drops the first connection without a close frame
// (a worker crash) past its second keyframe, and refuses tokens for a while
// (no worker available); the pusher must come back with a fresh token on
// the same camera session and replay from the last keyframe it sent, with
// the original timestamps, so the worker misses nothing.
func TestPusherReconnects(t *testing.T) {
	const interval = 5 * time.Millisecond
	w := newFakeWorker(t, func(n int, c *websocket.Conn, seen *wsConn, w *fakeWorker) {
		if welcome(c, fmt.Sprintf("sess-%d", n)) != nil {
			return
		}
		if n == 1 {
			w.readFrames(c, seen, 13)
			c.NetConn().Close() // abrupt: no close handshake
			return
		}
		w.readFrames(c, seen, -1)
	})
	tokens := &tokenCounter{url: w.url()}
	var calls atomic.Int32
	source := func(ctx context.Context) (string, string, error) {
		if n := calls.Add(1); n == 2 || n == 3 {
			return "", "", errors.New("no worker available")
		}
		return tokens.source(ctx)
	}
	src := &fakeSource{interval: interval, gop: 10}
	log, _ := captureLogger()
	p := &Pusher{Source: src, Tokens: source, Logger: log,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	runPusher(t, p)

	conns := w.waitFor(t, "frames on a second connection", func(s []wsConn) bool { return len(s) >= 2 && len(s[1].frames) >= 30 })
	if conns[0].hello.Token != "tok-1" || conns[1].hello.Token != "tok-2" {
		t.Errorf("tokens = %q, %q; want tok-1 then a fresh tok-2", conns[0].hello.Token, conns[1].hello.Token)
	}
	first, second := conns[0].frames, conns[1].frames
	lastKey := time.Duration(-1)
	for _, f := range first {
		if f.Keyframe {
			lastKey = f.DTS
		}
	}
	if lastKey != 10*interval {
		t.Fatalf("first connection's last keyframe at %v, want %v", lastKey, 10*interval)
	}
	// The replay starts at a keyframe the dead worker may have recorded
	// from, and leaves nothing out.
	if !second[0].Keyframe || second[0].DTS < lastKey || second[0].DTS > first[len(first)-1].DTS+interval {
		t.Errorf("second connection starts with %+v, want a keyframe in [%v, %v]", second[0], lastKey,
			first[len(first)-1].DTS+interval)
	}
	for i := 1; i < len(second); i++ {
		if second[i].DTS-second[i-1].DTS != interval || second[i].PTS != second[i].DTS {
			t.Fatalf("second connection: frame %d at %v after %v, want one every %v", i, second[i].DTS, second[i-1].DTS, interval)
		}
	}
	if !second[0].Wall.Before(time.Unix(0, conns[1].hello.Clock)) {
		t.Errorf("replayed keyframe's wall clock %v is not its capture time (hello at %v)", second[0].Wall, time.Unix(0, conns[1].hello.Clock))
	}
	if src.runs.Load() != 1 {
		t.Errorf("camera opened %d times, want once: a worker failure keeps the camera session", src.runs.Load())
	}
	if st := p.Status(); st.Attempts != 4 || st.WorkerSessionID != "sess-2" || st.FramesDropped != 0 {
		t.Errorf("status = %+v, want 4 attempts, sess-2 and no drops", st)
	}
}

// TestPusherRetriesTokenErrors: a failing TokenSource is retried, a
// RejectedError from it is final.
func TestPusherRetriesTokenErrors(t *testing.T) {
	var calls atomic.Int32
	tokens := func(context.Context) (string, string, error) {
		if calls.Add(1) < 3 {
			return "", "", errors.New("control plane unavailable")
		}
		return "", "", &RejectedError{Code: media.CloseSessionEnded, Reason: "session ended"}
	}
	log, _ := captureLogger()
	p := &Pusher{Source: &fakeSource{interval: time.Millisecond, gop: 5}, Tokens: tokens, Logger: log,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := p.Run(ctx)
	if rej, ok := errors.AsType[*RejectedError](err); !ok || rej.Code != media.CloseSessionEnded {
		t.Fatalf("Run = %v, want the RejectedError", err)
	}
	if calls.Load() != 3 {
		t.Errorf("TokenSource called %d times, want 3", calls.Load())
	}
}

func TestPusherPings(t *testing.T) {
	var pings atomic.Int32
	w := newFakeWorker(t, func(_ int, c *websocket.Conn, seen *wsConn, w *fakeWorker) {
		c.SetPingHandler(func(data string) error {
			pings.Add(1)
			w.ping()
			return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		if welcome(c, "s") != nil {
			return
		}
		w.readFrames(c, seen, -1)
	})
	tokens := &tokenCounter{url: w.url()}
	log, _ := captureLogger()
	p := &Pusher{Source: &fakeSource{interval: 50 * time.Millisecond, gop: 5}, Tokens: tokens.source, Logger: log,
		PingInterval: 10 * time.Millisecond}
	runPusher(t, p)
	w.waitFor(t, "pings", func([]wsConn) bool { return pings.Load() >= 3 })
}

// TestReplayBuffer: the buffer holds from the last keyframe sent, rewinds
// there, and past its bounds drops whole GOPs from the oldest, never
// leaving a frame without its keyframe.
func TestReplayBuffer(t *testing.T) {
	log, _ := captureLogger()
	frame := func(i int, key bool, size int) media.Frame {
		return media.Frame{Keyframe: key, DTS: time.Duration(i) * time.Second, Payload: make([]byte, size)}
	}
	dtsOf := func(b *replayBuffer) string {
		var out []int64
		for {
			f, seq, ok := b.next()
			if !ok {
				return fmt.Sprint(out)
			}
			out = append(out, int64(f.DTS/time.Second))
			b.sent(seq, f)
		}
	}

	p := &Pusher{Logger: log, QueueBytes: 100, QueueDuration: time.Hour}
	b := newReplayBuffer(p, 0)
	b.add(frame(0, false, 1)) // before any keyframe: not held
	for i := 1; i <= 5; i++ {
		b.add(frame(i, i == 1 || i == 4, 1))
	}
	if got := dtsOf(b); got != "[1 2 3 4 5]" {
		t.Fatalf("sent %s, want [1 2 3 4 5]", got)
	}
	// The keyframe at 4 was sent: 1..3 are released, 4 and 5 replayed.
	if n := b.rewind(); n != 2 {
		t.Errorf("rewind replays %d frames, want 2", n)
	}
	b.add(frame(6, false, 1))
	if got := dtsOf(b); got != "[4 5 6]" {
		t.Errorf("after rewind sent %s, want [4 5 6]", got)
	}

	// Byte bound: a worker that is gone while the camera goes on.
	b.rewind()
	for i := 7; i <= 12; i++ {
		b.add(frame(i, i == 8 || i == 11, 30))
	}
	// 4..10 held 3+6·30 bytes > 100: the GOPs at 4 and 8 went, whole.
	if got := dtsOf(b); got != "[11 12]" {
		t.Errorf("after the byte bound sent %s, want [11 12]", got)
	}
	if d := p.drops.Load(); d != 4 {
		t.Errorf("dropped %d frames never sent, want 4 (7..10; 4..6 reached a worker)", d)
	}

	// Duration bound, and a GOP longer than the bound: everything goes and
	// frames wait for the next keyframe.
	p2 := &Pusher{Logger: log, QueueBytes: 1 << 20, QueueDuration: 3 * time.Second}
	b2 := newReplayBuffer(p2, 0)
	for i := 0; i <= 6; i++ {
		b2.add(frame(i, i == 0, 1))
	}
	b2.add(frame(7, false, 1))
	b2.add(frame(8, true, 1))
	b2.add(frame(9, false, 1))
	if got := dtsOf(b2); got != "[8 9]" {
		t.Errorf("after the duration bound sent %s, want [8 9]", got)
	}

	// Another track's keyframe does not start a GOP.
	b3 := newReplayBuffer(&Pusher{Logger: log}, 0)
	b3.add(media.Frame{Track: 1, Keyframe: true, Payload: []byte{1}})
	b3.add(media.Frame{Track: 0, Keyframe: true, DTS: 1, Payload: []byte{1}})
	b3.add(media.Frame{Track: 1, Keyframe: true, DTS: 2, Payload: []byte{1}})
	dtsOf(b3)
	if n := b3.rewind(); n != 2 {
		t.Errorf("rewind replays %d frames, want the leader's keyframe and what follows", n)
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 500 * time.Millisecond, max: 30 * time.Second}
	prevCap := time.Duration(0)
	for i := range 12 {
		d := b.next()
		ceil := min(b.max, b.min<<i)
		if d < ceil/2 || d > ceil {
			t.Fatalf("step %d: %v outside [%v, %v]", i, d, ceil/2, ceil)
		}
		if ceil < prevCap {
			t.Fatalf("cap shrank")
		}
		prevCap = ceil
	}
	b.reset()
	if d := b.next(); d > b.min {
		t.Errorf("after reset: %v > %v", d, b.min)
	}
}

// TestPusherDialsBounded: pushers sharing a Dials semaphore open at most
// that many worker connections at once (the worker's welcome is slow, as
// a busy control plane's authorization is), and all of them go live.
func TestPusherDialsBounded(t *testing.T) {
	var dialling peakCounter
	w := newFakeWorker(t, func(n int, c *websocket.Conn, seen *wsConn, w *fakeWorker) {
		dialling.enter()
		time.Sleep(100 * time.Millisecond)
		dialling.leave()
		if err := welcome(c, fmt.Sprintf("sess-%d", n)); err != nil {
			return
		}
		w.readFrames(c, seen, -1)
	})
	tokens := &tokenCounter{url: w.url()}
	log, _ := captureLogger()
	dials := make(chan struct{}, 2)
	const n = 6
	var pushers []*Pusher
	for range n {
		p := &Pusher{Source: &fakeSource{interval: 5 * time.Millisecond, gop: 10}, Tokens: tokens.source, Logger: log, Dials: dials}
		pushers = append(pushers, p)
		runPusher(t, p)
	}
	w.waitFor(t, "every stream sending frames", func(s []wsConn) bool {
		if len(s) < n {
			return false
		}
		for _, c := range s {
			if len(c.frames) == 0 {
				return false
			}
		}
		return true
	})
	if peak := dialling.peak(); peak > 2 {
		t.Errorf("%d worker connections opened at once, want at most 2", peak)
	}
	for i, p := range pushers {
		if st := p.Status(); st.State != PushLive {
			t.Errorf("pusher %d: %+v, want live", i, st)
		}
	}
}

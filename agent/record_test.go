package agent

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/democam"
)

// recordRig is an Executor whose Manager pushes to a fake worker and takes
// fresh tokens from a recording issuer.
type recordRig struct {
	exec   *Executor
	m      *Manager
	worker *fakeWorker

	mu     sync.Mutex
	issued []string // channel/quality/record of every token asked for
}

func newRecordRig(t *testing.T, behave func(n int, c *websocket.Conn, seen *wsConn, w *fakeWorker)) *recordRig {
	t.Helper()
	r := &recordRig{worker: newFakeWorker(t, behave)}
	log, logs := captureLogger()
	r.m = NewManager(ManagerConfig{
		Resolver: &fakeResolver{},
		Logger:   log,
		Tokens: issuerFunc(func(_ context.Context, ch, q string, record bool) (string, string, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.issued = append(r.issued, fmt.Sprintf("%s/%s/%v", ch, q, record))
			return fmt.Sprintf("fresh-%d", len(r.issued)), r.worker.url(), nil
		}),
		TunePusher: func(p *Pusher) { p.MinBackoff, p.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond },
	})
	r.exec = &Executor{Streams: r.m}
	t.Cleanup(func() {
		r.m.Close()
		for _, secret := range []string{"Cam-Pa55-word", "tok-"} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("secret %q in logs:\n%s", secret, logs.String())
			}
		}
	})
	return r
}

// record sends a record command the way the control client runs it: bounded
// by control.ExecTimeout.
func (r *recordRig) record(t *testing.T, channel, quality, cameraURL, token string) (control.Ack, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), control.ExecTimeout)
	defer cancel()
	return r.exec.Execute(ctx, control.Command{V: 1, ID: "cmd-" + token, Type: control.TypeRecord, CameraID: "cam",
		ChannelID: channel, Quality: quality,
		Camera: &control.Camera{StreamURL: cameraURL, Protocol: "rtsp"},
		Stream: &control.Stream{Token: token, SessionID: strings.Replace(token, "tok-", "sess-", 1), WorkerURL: r.worker.url()}})
}

func (r *recordRig) stopRecord(t *testing.T, channel string) error {
	t.Helper()
	_, err := r.exec.Execute(t.Context(), control.Command{V: 1, ID: "stop", Type: control.TypeStopRecord, CameraID: "cam", ChannelID: channel})
	return err
}

// running lists the streams that have not ended.
func (r *recordRig) running() []StreamInfo {
	var out []StreamInfo
	for _, s := range r.m.List() {
		if s.EndedAt == nil {
			out = append(out, s)
		}
	}
	return out
}

func readAll(_ int, c *websocket.Conn, seen *wsConn, w *fakeWorker) {
	if welcome(c, "w-sess") != nil {
		return
	}
	w.readFrames(c, seen, -1)
}

// TestRecordCommands: record starts a stream, a repeated record changes
// nothing, another quality restarts it, stop-record stops it.
func TestRecordCommands(t *testing.T) {
	const camUser, camPass = "operator", "Cam-Pa55-word"
	cam := startCamera(t, demoSample, democam.WithAuth(camUser, camPass), democam.WithFPS(250))
	camURL := withCredentials(cam.URL(), camUser, camPass)
	r := newRecordRig(t, readAll)

	ack, err := r.record(t, "chan-1", "high", camURL, "tok-1")
	if err != nil || !ack.Started {
		t.Fatalf("record = %+v, %v; want started", ack, err)
	}
	conns := r.worker.waitFor(t, "frames", func(s []wsConn) bool { return len(s) == 1 && len(s[0].frames) >= 5 })
	if conns[0].hello.Token != "tok-1" {
		t.Errorf("hello token = %q, want the command's", conns[0].hello.Token)
	}
	list := r.running()
	if len(list) != 1 || !list[0].Record || list[0].ChannelID != "chan-1" || list[0].Quality != "high" || strings.Contains(list[0].Camera, camPass) {
		t.Fatalf("streams = %+v", list)
	}

	// The supervisor re-sends record: nothing changes.
	ack, err = r.record(t, "chan-1", "high", camURL, "tok-2")
	if err != nil || ack.Started {
		t.Fatalf("second record = %+v, %v; want ok, not started", ack, err)
	}
	if n := len(r.worker.snapshot()); n != 1 || len(r.running()) != 1 {
		t.Fatalf("after a repeated record: %d worker connections, %d streams", n, len(r.running()))
	}

	// Another quality: the stream restarts.
	ack, err = r.record(t, "chan-1", "low", camURL, "tok-3")
	if err != nil || !ack.Started {
		t.Fatalf("record at another quality = %+v, %v; want started", ack, err)
	}
	conns = r.worker.waitFor(t, "the new stream", func(s []wsConn) bool { return len(s) == 2 && s[0].close != nil && len(s[1].frames) > 0 })
	if conns[0].close.Code != websocket.CloseNormalClosure || conns[1].hello.Token != "tok-3" {
		t.Errorf("old close = %+v, new hello token %q", conns[0].close, conns[1].hello.Token)
	}
	if list := r.running(); len(list) != 1 || list[0].Quality != "low" {
		t.Fatalf("streams after quality change = %+v", list)
	}

	if err := r.stopRecord(t, "chan-1"); err != nil {
		t.Fatalf("stop-record: %v", err)
	}
	r.worker.waitFor(t, "close", func(s []wsConn) bool { return s[1].close != nil })
	if list := r.running(); len(list) != 0 {
		t.Fatalf("streams after stop-record = %+v", list)
	}
	if err := r.stopRecord(t, "chan-1"); err != nil {
		t.Fatalf("stop-record of a channel not recorded: %v", err)
	}
}

// TestRecordResumesWorker: when the worker drops the connection, the
// stream comes back with a fresh record token; the camera is not failed.
func TestRecordResumesWorker(t *testing.T) {
	cam := startCamera(t, demoSample, democam.WithFPS(250))
	r := newRecordRig(t, func(n int, c *websocket.Conn, seen *wsConn, w *fakeWorker) {
		if welcome(c, "w-sess") != nil {
			return
		}
		if n == 1 {
			w.readFrames(c, seen, 3)
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "restarting"), time.Now().Add(time.Second))
			return
		}
		w.readFrames(c, seen, -1)
	})
	if ack, err := r.record(t, "chan-9", "mid", cam.URL(), "tok-1"); err != nil || !ack.Started {
		t.Fatalf("record = %+v, %v", ack, err)
	}
	conns := r.worker.waitFor(t, "a second connection", func(s []wsConn) bool { return len(s) == 2 && len(s[1].frames) > 0 })
	if conns[1].hello.Token != "fresh-1" {
		t.Errorf("second hello token = %q, want the issuer's", conns[1].hello.Token)
	}
	r.mu.Lock()
	issued := strings.Join(r.issued, ",")
	r.mu.Unlock()
	if issued != "chan-9/mid/true" {
		t.Errorf("tokens asked for: %s, want one record token of chan-9/mid", issued)
	}
	if list := r.running(); len(list) != 1 || !list[0].Record || list[0].ChannelID != "chan-9" {
		t.Fatalf("streams = %+v", list)
	}
}

// TestRecordBackoffCapped: a record stream retries its worker at least
// every RecordMaxBackoff, so a channel moved off a dead NVR is recording on
// the new one soon after the move (e2e TestFaultMatrix measures it).
func TestRecordBackoffCapped(t *testing.T) {
	cam := startCamera(t, demoSample, democam.WithFPS(250))
	maxBackoff := make(chan time.Duration, 1)
	r := newRecordRig(t, readAll)
	// Seen before the rig's own tuning, which shortens every backoff.
	tune := r.m.cfg.TunePusher
	r.m.cfg.TunePusher = func(p *Pusher) {
		maxBackoff <- p.MaxBackoff
		tune(p)
	}
	if ack, err := r.record(t, "chan-1", "high", cam.URL(), "tok-1"); err != nil || !ack.Started {
		t.Fatalf("record = %+v, %v", ack, err)
	}
	got := <-maxBackoff
	if got != RecordMaxBackoff {
		t.Errorf("record stream's max backoff = %s, want %s", got, RecordMaxBackoff)
	}
	if RecordMaxBackoff >= DefaultQueueDuration {
		t.Errorf("RecordMaxBackoff %s: a retry would come after the replay buffer (%s) is spent", RecordMaxBackoff, DefaultQueueDuration)
	}
	b := backoff{min: DefaultMinBackoff, max: got}
	for range 20 {
		if d := b.next(); d > RecordMaxBackoff {
			t.Fatalf("a reconnect delay of %s past the cap %s", d, RecordMaxBackoff)
		}
	}
}

// TestRecordCameraFailures: a camera that cannot be opened is an error ack
// naming the cause, never the credentials; a camera that fails later ends
// the stream without retries.
func TestRecordCameraFailures(t *testing.T) {
	const camUser, camPass = "operator", "Cam-Pa55-word"
	cam := startCamera(t, demoSample, democam.WithAuth(camUser, camPass), democam.WithFPS(250))
	// A camera that accepts the connection and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	r := newRecordRig(t, readAll)

	tests := []struct {
		name, url string
		timeout   time.Duration
		want      []string
	}{
		{"closed port", "rtsp://operator:Cam-Pa55-word@127.0.0.1:1/live", control.ExecTimeout,
			[]string{"camera unreachable", "connection refused", "127.0.0.1:1"}},
		{"wrong password", withCredentials(cam.URL(), camUser, "Wrong-"+camPass), control.ExecTimeout,
			[]string{"camera refused the credentials (401)"}},
		{"silent camera", "rtsp://operator:Cam-Pa55-word@" + silent.Addr().String() + "/live", recordAckMargin + time.Second,
			[]string{"camera did not deliver a stream in time"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), tc.timeout)
			defer cancel()
			ack, err := r.exec.Execute(ctx, control.Command{V: 1, ID: "c", Type: control.TypeRecord, CameraID: "cam",
				ChannelID: "chan-" + tc.name, Quality: "high", Camera: &control.Camera{StreamURL: tc.url, Protocol: "rtsp"},
				Stream: &control.Stream{Token: "tok-x", SessionID: "sess-" + tc.name, WorkerURL: r.worker.url()}})
			if err == nil || ack.Started {
				t.Fatalf("record = %+v, %v; want an error", ack, err)
			}
			for _, part := range tc.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
			if strings.Contains(err.Error(), camPass) || strings.Contains(err.Error(), camUser) {
				t.Errorf("error leaks credentials: %q", err)
			}
		})
	}
	if n := len(r.worker.snapshot()); n != 0 {
		t.Errorf("the worker saw %d connections for cameras that never opened", n)
	}

	// A camera that fails once recording: the stream ends, failed.
	cam2 := startCamera(t, demoSample, democam.WithFPS(250))
	if ack, err := r.record(t, "chan-2", "high", cam2.URL(), "tok-2"); err != nil || !ack.Started {
		t.Fatalf("record = %+v, %v", ack, err)
	}
	r.worker.waitFor(t, "frames", func(s []wsConn) bool { return len(s) == 1 && len(s[0].frames) > 0 })
	cam2.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var info *StreamInfo
		for _, s := range r.m.List() {
			if s.ChannelID == "chan-2" {
				info = &s
			}
		}
		if info != nil && info.EndedAt != nil {
			if info.Status != PushFailed || info.Attempts != 1 || info.LastError == "" {
				t.Fatalf("ended stream = %+v, want failed after one attempt", *info)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream did not end after its camera closed: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The next record command starts anew (and finds the camera gone).
	if _, err := r.record(t, "chan-2", "high", cam2.URL(), "tok-3"); err == nil || !strings.Contains(err.Error(), "camera unreachable") {
		t.Fatalf("record after the camera closed = %v, want camera unreachable", err)
	}
}

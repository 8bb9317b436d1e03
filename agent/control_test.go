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
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/opennvr/vms/control"
)

// commanderFunc adapts a function to Commander.
type commanderFunc func(ctx context.Context, cmd control.Command) (control.Ack, error)

func (f commanderFunc) Execute(ctx context.Context, cmd control.Command) (control.Ack, error) {
	return f(ctx, cmd)
}

// fakeAPI is the API's side of the control channel: it accepts agents with
// the right key and hands each connection to the test.
type fakeAPI struct {
	t     *testing.T
	url   string
	conns chan *websocket.Conn
	mu    sync.Mutex
	auths []string // Authorization headers seen, in order
	// refuse, if > 0, answers that many first attempts with 401.
	refuse int
}

func startFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, conns: make(chan *websocket.Conn, 8)}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		refuse := f.refuse > 0
		f.refuse--
		f.mu.Unlock()
		if r.URL.Path != control.Path || refuse || r.Header.Get("Authorization") != "Bearer agt_key" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		f.conns <- c
	}))
	t.Cleanup(srv.Close)
	u, err := ControlURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	f.url = u
	return f
}

// next waits for the agent's next connection.
func (f *fakeAPI) next() *apiConn {
	f.t.Helper()
	select {
	case c := <-f.conns:
		f.t.Cleanup(func() { c.Close() })
		return &apiConn{Conn: c}
	case <-time.After(5 * time.Second):
		f.t.Fatal("the agent did not connect")
		return nil
	}
}

// apiConn is the API's end of one agent connection. A gorilla connection
// whose read timed out is unusable, so acks are read by one goroutine and
// waited for on a channel.
type apiConn struct {
	*websocket.Conn
	once sync.Once
	acks chan control.Ack
}

func (c *apiConn) read(t *testing.T) {
	c.once.Do(func() {
		c.acks = make(chan control.Ack, 16)
		go func() {
			defer close(c.acks)
			for {
				_, data, err := c.ReadMessage()
				if err != nil {
					return
				}
				var ack control.Ack
				if err := json.Unmarshal(data, &ack); err != nil {
					t.Errorf("agent sent a non-ack %q", data)
					return
				}
				c.acks <- ack
			}
		}()
	})
}

// runClient runs a ControlClient against f until the test ends.
func runClient(t *testing.T, f *fakeAPI, cmd Commander, tweak func(*ControlClient)) {
	t.Helper()
	logger, _ := captureLogger()
	c := &ControlClient{URL: f.url, Key: "agt_key", Commands: cmd, Logger: logger,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if tweak != nil {
		tweak(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

// exchange sends raw and waits for the next ack.
func exchange(t *testing.T, c *apiConn, raw string, wait time.Duration) (control.Ack, bool) {
	t.Helper()
	c.read(t)
	if err := c.WriteMessage(websocket.TextMessage, []byte(raw)); err != nil {
		t.Fatalf("send %s: %v", raw, err)
	}
	return readAck(t, c, wait)
}

func readAck(t *testing.T, c *apiConn, wait time.Duration) (control.Ack, bool) {
	t.Helper()
	c.read(t)
	select {
	case ack, ok := <-c.acks:
		return ack, ok
	case <-time.After(wait):
		return control.Ack{}, false
	}
}

// TestControlClientAnswersEveryCommand: valid commands run and are acked;
// invalid ones get an error ack (or are dropped when they have no id); a
// panicking command is an error ack; the channel keeps working throughout.
func TestControlClientAnswersEveryCommand(t *testing.T) {
	f := startFakeAPI(t)
	var mu sync.Mutex
	var ran []string
	runClient(t, f, commanderFunc(func(_ context.Context, cmd control.Command) (control.Ack, error) {
		mu.Lock()
		ran = append(ran, cmd.ID)
		mu.Unlock()
		switch cmd.Action {
		case "home":
			panic("boom")
		case "stop":
			return control.Ack{}, errors.New("camera said no")
		}
		// Whatever the commander says besides, the client sets v, id and ok.
		return control.Ack{V: 9, ID: "other", Started: cmd.Type == control.TypeRecord}, nil
	}), nil)
	conn := f.next()

	tests := []struct {
		name, raw string
		wantAck   bool
		ok        bool
		errPart   string
		started   bool
	}{
		{"ptz", `{"v":1,"id":"a1","type":"ptz","camera_id":"c","action":"left","speed":0.5}`, true, true, "", false},
		{"failing", `{"v":1,"id":"a2","type":"ptz","camera_id":"c","action":"stop"}`, true, false, "camera said no", false},
		{"panicking", `{"v":1,"id":"a3","type":"ptz","camera_id":"c","action":"home"}`, true, false, "internal error", false},
		{"future version", `{"v":2,"id":"a4","type":"ptz","camera_id":"c","action":"left"}`, true, false, "unsupported protocol version 2", false},
		{"unknown type", `{"v":1,"id":"a5","type":"reboot","camera_id":"c"}`, true, false, `unknown command type "reboot"`, false},
		{"bad action", `{"v":1,"id":"a6","type":"ptz","camera_id":"c","action":"somersault"}`, true, false, "action must be one of", false},
		{"preset without n", `{"v":1,"id":"a7","type":"ptz","camera_id":"c","action":"preset"}`, true, false, "needs preset", false},
		{"snapshot without URL", `{"v":1,"id":"a8","type":"snapshot","camera_id":"c"}`, true, false, "upload_url", false},
		{"record", `{"v":1,"id":"r1","type":"record","camera_id":"c","channel_id":"ch","quality":"high"}`, true, true, "", true},
		{"record without quality", `{"v":1,"id":"r2","type":"record","camera_id":"c","channel_id":"ch"}`, true, false, "quality", false},
		{"wrong field type", `{"v":1,"id":"a9","type":"ptz","camera_id":"c","action":"preset","preset":"two"}`, true, false, "malformed command", false},
		{"not JSON", `{{{`, false, false, "", false},
		{"no id", `{"v":1,"type":"ptz","camera_id":"c","action":"left"}`, false, false, "", false},
		{"array", `[1,2,3]`, false, false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait := 5 * time.Second
			if !tt.wantAck {
				wait = 200 * time.Millisecond
			}
			ack, got := exchange(t, conn, tt.raw, wait)
			if got != tt.wantAck {
				t.Fatalf("ack received = %v (%+v), want %v", got, ack, tt.wantAck)
			}
			if !got {
				return
			}
			if ack.V != control.Version || ack.OK != tt.ok || !strings.Contains(ack.Error, tt.errPart) || ack.Started != tt.started {
				t.Fatalf("ack %+v, want ok=%v started=%v error containing %q", ack, tt.ok, tt.started, tt.errPart)
			}
		})
	}
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	// Still alive after all that.
	if ack, ok := exchange(t, conn, `{"v":1,"id":"last","type":"ptz","camera_id":"c","action":"up"}`, 5*time.Second); !ok || !ack.OK || ack.ID != "last" {
		t.Fatalf("final command: %+v %v", ack, ok)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(ran, ",") != "a1,a2,a3,r1,last" {
		t.Fatalf("commands run: %v, want only the valid ones", ran)
	}
}

// TestControlClientReconnects: refused at first, dropped by the API later,
// the agent keeps coming back with its key, and commands work again.
func TestControlClientReconnects(t *testing.T) {
	f := startFakeAPI(t)
	f.refuse = 2
	runClient(t, f, commanderFunc(func(context.Context, control.Command) (control.Ack, error) { return control.Ack{}, nil }), nil)
	for i := range 3 {
		conn := f.next()
		if ack, ok := exchange(t, conn, `{"v":1,"id":"x","type":"ptz","camera_id":"c","action":"up"}`, 5*time.Second); !ok || !ack.OK {
			t.Fatalf("connection %d: ack %+v %v", i, ack, ok)
		}
		conn.Close() // the API replica goes away
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.auths) < 5 {
		t.Fatalf("%d attempts, want 2 refused + 3 accepted", len(f.auths))
	}
	for _, a := range f.auths {
		if a != "Bearer agt_key" {
			t.Fatalf("Authorization %q, want the agent key", a)
		}
	}
}

// TestControlClientDropsSilentConnection: an API that stops answering pings
// is given up after three ping intervals, and the agent reconnects.
func TestControlClientDropsSilentConnection(t *testing.T) {
	f := startFakeAPI(t)
	runClient(t, f, commanderFunc(func(context.Context, control.Command) (control.Ack, error) { return control.Ack{}, nil }), func(c *ControlClient) {
		c.PingInterval = 50 * time.Millisecond
	})
	f.next() // never read from: its pings go unanswered
	conn := f.next()
	if ack, ok := exchange(t, conn, `{"v":1,"id":"y","type":"ptz","camera_id":"c","action":"up"}`, 5*time.Second); !ok || !ack.OK {
		t.Fatalf("after reconnect: ack %+v %v", ack, ok)
	}
}

// TestControlClientBoundsInFlight: commands beyond MaxInFlight are answered
// busy at once instead of piling up.
func TestControlClientBoundsInFlight(t *testing.T) {
	f := startFakeAPI(t)
	release := make(chan struct{})
	runClient(t, f, commanderFunc(func(ctx context.Context, _ control.Command) (control.Ack, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return control.Ack{}, nil
	}), func(c *ControlClient) { c.MaxInFlight = 1 })
	conn := f.next()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"id":"slow","type":"ptz","camera_id":"c","action":"up"}`)); err != nil {
		t.Fatal(err)
	}
	if ack, ok := exchange(t, conn, `{"v":1,"id":"more","type":"ptz","camera_id":"c","action":"up"}`, 5*time.Second); !ok || ack.ID != "more" || ack.OK || !strings.Contains(ack.Error, "busy") {
		t.Fatalf("second command: %+v %v, want busy", ack, ok)
	}
	close(release)
	if ack, ok := readAck(t, conn, 5*time.Second); !ok || ack.ID != "slow" || !ack.OK {
		t.Fatalf("first command: %+v %v", ack, ok)
	}
}

func TestControlURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":       "ws://127.0.0.1:8080/internal/v1/agent/control",
		"https://api.example.com/":    "wss://api.example.com/internal/v1/agent/control",
		"https://api.example.com/vms": "wss://api.example.com/vms/internal/v1/agent/control",
	} {
		if got, err := ControlURL(in); err != nil || got != want {
			t.Errorf("ControlURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:8080", "ftp://x", ""} {
		if _, err := ControlURL(bad); err == nil {
			t.Errorf("ControlURL(%q) accepted", bad)
		}
	}
}

// TestControlClientQueuesRecordCommands: record commands beyond
// MaxStreamCommands wait for a slot instead of being refused, never more
// run at once, and PTZ is not held up behind them; one that waits past its
// deadline is answered busy (control.Ack.Busy), not failed.
func TestControlClientQueuesRecordCommands(t *testing.T) {
	f := startFakeAPI(t)
	var running peakCounter
	runClient(t, f, commanderFunc(func(ctx context.Context, cmd control.Command) (control.Ack, error) {
		if cmd.Type != control.TypeRecord {
			return control.Ack{}, nil
		}
		running.enter()
		time.Sleep(50 * time.Millisecond)
		running.leave()
		return control.Ack{Started: true}, nil
	}), func(c *ControlClient) { c.MaxStreamCommands, c.MaxInFlight = 2, 1 })
	conn := f.next()
	conn.read(t)
	const n = 12
	for i := range n {
		cmd := fmt.Sprintf(`{"v":1,"id":"r%d","type":"record","camera_id":"c","channel_id":"ch%d","quality":"high"}`, i, i)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
			t.Fatal(err)
		}
	}
	// Sent behind the queue, answered at once.
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"id":"ptz","type":"ptz","camera_id":"c","action":"up"}`)); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for range n + 1 {
		ack, ok := readAck(t, conn, 5*time.Second)
		if !ok {
			t.Fatalf("acks: got %d of %d", len(acked), n+1)
		}
		if !ack.OK {
			t.Errorf("command %s: %+v, want ok", ack.ID, ack)
		}
		if ack.ID == "ptz" && len(acked) >= n/2 {
			t.Errorf("the PTZ command was answered after %d record commands: it waited behind them", len(acked))
		}
		acked[ack.ID] = true
	}
	if peak := running.peak(); peak > 2 {
		t.Errorf("%d record commands ran at once, want at most 2", peak)
	}

	// A command whose deadline passes while it waits is answered busy.
	g := startFakeAPI(t)
	release := make(chan struct{})
	runClient(t, g, commanderFunc(func(context.Context, control.Command) (control.Ack, error) {
		<-release // a camera slower than the deadline
		return control.Ack{}, nil
	}), func(c *ControlClient) { c.MaxStreamCommands, c.CommandTimeout = 1, 300*time.Millisecond })
	conn = g.next()
	conn.read(t)
	for _, id := range []string{"holds", "waits"} {
		cmd := fmt.Sprintf(`{"v":1,"id":"%s","type":"record","camera_id":"c","channel_id":"ch-%s","quality":"high"}`, id, id)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // "holds" takes the slot
	}
	if a, ok := readAck(t, conn, 5*time.Second); !ok || a.ID != "waits" || a.OK || !a.Busy || !strings.Contains(a.Error, "busy") {
		t.Errorf("queued command past its deadline: %+v %v, want a busy ack", a, ok)
	}
	close(release)
	if a, ok := readAck(t, conn, 5*time.Second); !ok || a.ID != "holds" || !a.OK {
		t.Errorf("running command: %+v %v, want ok", a, ok)
	}
}

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/opennvr/vms/control"
)

// Commander carries out one control command (Executor is the real one).
// On success it returns the ack's result fields (Started, for a record
// command); the ControlClient fills in the version, id and ok. The error,
// if any, goes back to the API as the ack's reason: it must not hold
// credentials.
type Commander interface {
	Execute(ctx context.Context, cmd control.Command) (control.Ack, error)
}

// ControlClient keeps the agent's control channel open: a WebSocket to the
// API's control.Path authenticated with the agent key, over which the API
// sends commands (PTZ, snapshot capture, record streams) and the agent answers each with an
// ack. It reconnects with capped exponential backoff and jitter for as long
// as Run's context lives.
//
// A message that is not a valid command is answered with an error ack when
// it carries an id, and dropped otherwise; a command that panics is answered
// with an error ack. Nothing the API sends can stop the agent.
//
// The fields must be set before Run and not changed afterwards.
type ControlClient struct {
	// URL is the control channel's WebSocket URL (see ControlURL).
	URL string
	// Key is the agent key.
	Key      string
	Commands Commander
	// Logger receives the channel's records; nil means slog.Default().
	Logger *slog.Logger
	// Dialer dials the API; nil means a dialer with a 10 s handshake timeout.
	Dialer *websocket.Dialer

	MinBackoff   time.Duration // default DefaultMinBackoff
	MaxBackoff   time.Duration // default DefaultMaxBackoff
	PingInterval time.Duration // default control.PingInterval; silence for 3× drops the connection
	// CommandTimeout bounds one command's work (default control.ExecTimeout).
	CommandTimeout time.Duration
	// MaxInFlight bounds the PTZ and snapshot commands running at once
	// (default 8); more are answered "busy" at once: a person is waiting.
	MaxInFlight int
	// MaxStreamCommands bounds the record and stop-record commands running
	// at once (default DefaultMaxStreamCommands): the camera sessions an
	// agent opens together. More wait for a free slot, up to
	// control.MaxPending of them, each within its own deadline; a command
	// that cannot get one in time is answered busy (control.Busy), and its
	// supervisor sends it again soon.
	MaxStreamCommands int
}

// DefaultMaxStreamCommands: record commands run this many at once. One
// opens a camera session (a few round trips on the LAN) and waits for its
// tracks, often for the next keyframe (a GOP, seconds): waiting on the
// camera, not the CPU. (Dialling the media worker comes after the ack and
// has its own bound, ManagerConfig.MaxDials.)
const DefaultMaxStreamCommands = 64

// ControlURL is the control channel's WebSocket URL for the API's base URL
// (http://host:port → ws://host:port/internal/v1/agent/control).
func ControlURL(apiBase string) (string, error) {
	u, err := url.Parse(strings.TrimRight(apiBase, "/"))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("API URL %q is not an absolute URL", apiBase)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("API URL %q: scheme must be http or https", apiBase)
	}
	u.Path += control.Path
	return u.String(), nil
}

// Run keeps the control channel up until ctx ends, then returns ctx.Err().
func (c *ControlClient) Run(ctx context.Context) error {
	log := c.logger()
	b := backoff{min: orDefault(c.MinBackoff, DefaultMinBackoff), max: orDefault(c.MaxBackoff, DefaultMaxBackoff)}
	for {
		start := time.Now()
		err := c.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(start) > healthyAfter {
			b.reset()
		}
		d := b.next()
		log.Warn("agent control channel down, reconnecting", "err", err, "in", d.Round(time.Millisecond))
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
	}
}

func (c *ControlClient) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// session runs one connection until it fails or ctx ends.
func (c *ControlClient) session(ctx context.Context) error {
	dialer := c.Dialer
	if dialer == nil {
		dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	}
	header := http.Header{"Authorization": {"Bearer " + c.Key}}
	conn, resp, err := dialer.DialContext(ctx, c.URL, header)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial control channel: HTTP %d", resp.StatusCode)
		}
		return fmt.Errorf("dial control channel: %w", err)
	}
	c.logger().Info("agent control channel connected")

	s := &controlSession{c: c, conn: conn, log: c.logger(), slots: make(chan struct{}, orDefault(c.MaxInFlight, 8)),
		streamSlots: make(chan struct{}, orDefault(c.MaxStreamCommands, DefaultMaxStreamCommands))}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		conn.Close()
		s.wg.Wait()
	}()
	// Closing the connection is what ends the blocking read on shutdown.
	s.wg.Go(func() { <-ctx.Done(); conn.Close() })
	s.wg.Go(func() { s.keepalive(ctx) })
	return s.read(ctx)
}

// controlSession is one connection of a ControlClient.
type controlSession struct {
	c     *ControlClient
	conn  *websocket.Conn
	log   *slog.Logger
	slots chan struct{} // PTZ and snapshot commands in flight

	streamSlots   chan struct{} // record and stop-record commands running
	streamWaiting atomic.Int32  // record and stop-record commands waiting for a slot

	writeMu sync.Mutex
	wg      sync.WaitGroup // running commands, the pinger and the closer
}

func (s *controlSession) interval() time.Duration {
	return orDefault(s.c.PingInterval, control.PingInterval)
}

func (s *controlSession) read(ctx context.Context) error {
	extend := func() { _ = s.conn.SetReadDeadline(time.Now().Add(3 * s.interval())) }
	extend()
	s.conn.SetReadLimit(1 << 20)
	s.conn.SetPongHandler(func(string) error { extend(); return nil })
	s.conn.SetPingHandler(func(data string) error {
		extend()
		err := s.writeControl(websocket.PongMessage, []byte(data))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		typ, data, err := s.conn.ReadMessage()
		if err != nil {
			return err
		}
		extend()
		if typ != websocket.TextMessage {
			s.log.Warn("agent control: dropped a binary message")
			continue
		}
		s.handle(ctx, data)
	}
}

// handle answers one message: an invalid command at once, a valid one from
// its own goroutine so that slow cameras never stall the channel.
func (s *controlSession) handle(ctx context.Context, data []byte) {
	var cmd control.Command
	if err := json.Unmarshal(data, &cmd); err != nil {
		// The message may still carry an id to answer to.
		var probe struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(data, &probe) == nil && probe.ID != "" {
			s.ack(control.Failed(probe.ID, errors.New("malformed command")))
			return
		}
		s.log.Warn("agent control: dropped a malformed message without an id")
		return
	}
	if cmd.ID == "" {
		s.log.Warn("agent control: dropped a command without an id", "type", cmd.Type)
		return
	}
	if err := cmd.Validate(); err != nil {
		s.ack(control.Failed(cmd.ID, err))
		return
	}
	if cmd.Type == control.TypeRecord || cmd.Type == control.TypeStopRecord {
		s.queueStream(ctx, cmd)
		return
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.ack(control.Busy(cmd.ID, errors.New("agent busy: too many commands in flight")))
		return
	}
	s.wg.Go(func() {
		defer func() { <-s.slots }()
		ctx, cancel := context.WithTimeout(ctx, s.timeout())
		defer cancel()
		s.ack(s.execute(ctx, cmd))
	})
}

// queueStream runs a record or stop-record command once a stream slot is
// free. Its deadline runs from now, waiting included, so its ack still
// comes before the API stops waiting; it waits at most half of it, so the
// camera has the other half to open, and is answered busy past that.
func (s *controlSession) queueStream(ctx context.Context, cmd control.Command) {
	if s.streamWaiting.Add(1) > control.MaxPending {
		s.streamWaiting.Add(-1)
		s.ack(control.Busy(cmd.ID, errors.New("agent busy: too many record commands waiting")))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	s.wg.Go(func() {
		defer cancel()
		wait := time.NewTimer(s.timeout() / 2)
		defer wait.Stop()
		select {
		case s.streamSlots <- struct{}{}:
			s.streamWaiting.Add(-1)
		case <-wait.C:
			s.streamWaiting.Add(-1)
			s.ack(control.Busy(cmd.ID, errors.New("agent busy: no record slot came free in time")))
			return
		case <-ctx.Done():
			s.streamWaiting.Add(-1)
			return // the connection is closing
		}
		defer func() { <-s.streamSlots }()
		s.ack(s.execute(ctx, cmd))
	})
}

func (s *controlSession) timeout() time.Duration {
	return orDefault(s.c.CommandTimeout, control.ExecTimeout)
}

// execute runs one command, bounded by ctx, and makes its ack; a panic
// becomes an error ack.
func (s *controlSession) execute(ctx context.Context, cmd control.Command) (ack control.Ack) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("agent control: command panicked", "command", cmd, "panic", p)
			ack = control.Failed(cmd.ID, errors.New("internal error in the agent"))
		}
	}()
	result, err := s.c.Commands.Execute(ctx, cmd)
	if err != nil {
		s.log.Warn("agent control: command failed", "command", cmd, "err", err, "ms", time.Since(start).Milliseconds())
		return control.Failed(cmd.ID, err)
	}
	s.log.Info("agent control: command done", "command", cmd, "ms", time.Since(start).Milliseconds())
	ack = control.Done(cmd.ID)
	ack.Started = result.Started
	return ack
}

func (s *controlSession) ack(a control.Ack) {
	msg, _ := json.Marshal(a)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		// The read loop sees the broken connection and reconnects; the API
		// reports the command unanswered.
		s.log.Warn("agent control: could not send an ack", "id", a.ID, "err", err)
	}
}

func (s *controlSession) writeControl(typ int, data []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.conn.WriteControl(typ, data, time.Now().Add(writeTimeout))
}

// keepalive pings the API until ctx ends.
func (s *controlSession) keepalive(ctx context.Context) {
	t := time.NewTicker(s.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.writeControl(websocket.PingMessage, nil); err != nil {
				s.conn.Close()
				return
			}
		}
	}
}

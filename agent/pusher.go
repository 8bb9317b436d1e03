package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/opennvr/vms/media"
)

// TokenSource returns a single-use stream token and the media worker URL it
// is valid for. The Pusher calls it once before every connection to a
// worker: the first call may return the token an app handed in, later ones
// must obtain fresh tokens (a worker refuses a token used before).
//
// An error that is or wraps a *RejectedError stops the Pusher for good
// (the control plane ended the session); any other error is retried.
type TokenSource func(ctx context.Context) (token, workerURL string, err error)

// RejectedError means the media worker or the control plane refused the
// stream for a reason a retry cannot fix: a bad or used token, an
// unsupported protocol version, a malformed hello, or a session the control
// plane ended. A Pusher does not retry it.
type RejectedError struct {
	// Code is the WebSocket close code, one of media.Close*.
	Code int
	// Reason is the worker's close text, if any.
	Reason string
}

func (e *RejectedError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("stream rejected by worker (code %d)", e.Code)
	}
	return fmt.Sprintf("stream rejected by worker (code %d): %s", e.Code, e.Reason)
}

// PushState is where a Pusher is in its life.
type PushState string

// Pusher states.
const (
	PushConnecting PushState = "connecting" // reaching camera and worker
	PushLive       PushState = "live"       // the worker accepted the stream
	PushRetrying   PushState = "retrying"   // waiting out a backoff
	PushStopped    PushState = "stopped"    // Run's context ended
	PushRejected   PushState = "rejected"   // a RejectedError ended Run
	PushFailed     PushState = "failed"     // the camera failed and EndOnCameraFailure ended Run
)

// CameraError is a failure of the camera side of an attempt: the camera
// could not be reached, refused the credentials, or ended its stream. A
// Pusher retries it unless EndOnCameraFailure is set.
type CameraError struct{ Err error }

func (e *CameraError) Error() string { return e.Err.Error() }
func (e *CameraError) Unwrap() error { return e.Err }

// PushStatus is a snapshot of a Pusher.
type PushStatus struct {
	State PushState
	// WorkerSessionID is the session the worker named in its last Welcome.
	WorkerSessionID string
	// LastError is the error that ended the last attempt (credentials
	// removed), empty if none.
	LastError string
	// Attempts counts connection attempts, including the current one.
	Attempts int
	// FramesSent and FramesDropped count over all attempts; frames are
	// dropped when the worker cannot keep up (see Pusher).
	FramesSent, FramesDropped uint64
}

// Defaults for the zero values of Pusher's fields.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// RecordMaxBackoff caps a record stream's reconnect delay. Its worker
	// may have died for good: the control plane moves the channel once the
	// NVR has been silent for recording.NVRStaleAfter, and only the agent's
	// next token names the new worker. Asking at least this often records
	// again within NVRStaleAfter + RecordMaxBackoff, while the replay buffer
	// (DefaultQueueDuration) still holds most of the outage; with the 30 s
	// cap the next try could come a minute after the kill.
	RecordMaxBackoff     = 5 * time.Second
	DefaultQueueBytes    = 32 << 20
	DefaultQueueDuration = 30 * time.Second
)

// healthyAfter is how long a worker connection must stay live before the
// backoff starts again from its minimum; a worker that accepts and drops
// streams in a loop keeps the delay growing.
const healthyAfter = 30 * time.Second

// writeTimeout bounds one WebSocket write: a worker that does not read for
// this long is treated as gone.
const writeTimeout = 10 * time.Second

// Pusher forwards one Source to a media worker and keeps doing so across
// camera and worker failures until its context ends or the stream is
// rejected.
//
// A camera session opens the camera and waits for its tracks; then, while
// the camera delivers, the Pusher takes a token from Tokens, dials the
// worker the token names, sends the Hello, waits for the Welcome, streams
// frames as binary messages and pings every PingInterval. When the worker
// connection fails, the camera session stays open: the Pusher reconnects
// (a fresh token, so possibly another worker) after a capped exponential
// backoff with jitter (MinBackoff doubling to MaxBackoff) and replays, with
// their original timestamps, the frames from the last keyframe it sent to
// the failed worker, then continues live (see replayBuffer). No media is
// lost to a worker failure while the buffer's bounds hold. When the camera
// fails, its session ends: the worker connection is closed normally, and
// the next camera session starts after the backoff with fresh tracks and a
// new connection.
//
// Closes: the Pusher closes a worker connection only with CloseNormal, when
// its camera session or the stream ends; the worker keeps all it received.
// Any other end of a connection (the worker's going away, a lost
// connection, a crash) is one the Pusher resumes from its last keyframe
// sent, so the worker ends that session's recording before its last
// keyframe (docs/protocol.md, "Resuming a stream").
//
// With EndOnCameraFailure (record streams: their supervisor retries with
// its own backoff and shows the error) a camera failure ends Run with the
// *CameraError instead; worker failures are still retried. A camera that
// changed its stream parameters (ErrTracksChanged) is not a failure.
//
// Back-pressure and outages: frames not yet sent wait in the replay buffer,
// bounded by QueueBytes and QueueDuration. Past a bound, the oldest whole
// GOP is dropped: the worker sees a gap, never a frame whose keyframe is
// missing, and the agent's memory stays bounded.
//
// The fields must be set before Run and not changed afterwards.
type Pusher struct {
	Source Source
	Tokens TokenSource
	// Logger receives the stream's records; nil means slog.Default().
	Logger *slog.Logger
	// Dialer dials the worker; nil means a dialer with a 10 s handshake
	// timeout that honours proxy environment variables.
	Dialer *websocket.Dialer

	QueueBytes    int           // default DefaultQueueBytes
	QueueDuration time.Duration // default DefaultQueueDuration
	MinBackoff    time.Duration // default DefaultMinBackoff
	MaxBackoff    time.Duration // default DefaultMaxBackoff
	PingInterval  time.Duration // default media.KeepaliveTimeout / 4

	// EndOnCameraFailure: a camera failure ends Run (see above).
	EndOnCameraFailure bool
	// OnCameraOpen, if set, is called at every camera session once the
	// camera delivered its tracks, before the worker is dialled.
	OnCameraOpen func()
	// Dials, if set, is a semaphore shared by Pushers: a slot is held
	// while the worker is dialled (token, handshake, authorization).
	Dials chan struct{}

	mu     sync.Mutex
	status PushStatus
	sent   atomic.Uint64
	drops  atomic.Uint64
}

// Status returns a snapshot of the Pusher's state.
func (p *Pusher) Status() PushStatus {
	p.mu.Lock()
	s := p.status
	p.mu.Unlock()
	if s.State == "" {
		s.State = PushConnecting
	}
	s.FramesSent = p.sent.Load()
	s.FramesDropped = p.drops.Load()
	return s
}

func (p *Pusher) setStatus(f func(*PushStatus)) {
	p.mu.Lock()
	f(&p.status)
	p.mu.Unlock()
}

func (p *Pusher) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// Run streams until ctx ends (returning ctx.Err()), the stream is rejected
// (returning the *RejectedError) or, with EndOnCameraFailure, the camera
// fails (returning the *CameraError).
func (p *Pusher) Run(ctx context.Context) error {
	if p.Source == nil || p.Tokens == nil {
		return errors.New("pusher: Source and Tokens are required")
	}
	log := p.logger()
	bo := &backoff{min: p.MinBackoff, max: p.MaxBackoff}
	if bo.min <= 0 {
		bo.min = DefaultMinBackoff
	}
	if bo.max <= 0 {
		bo.max = DefaultMaxBackoff
	}
	if bo.max < bo.min {
		bo.max = bo.min
	}
	for {
		err := p.cameraSession(ctx, bo)
		if ctx.Err() != nil {
			p.setStatus(func(s *PushStatus) { s.State = PushStopped })
			return ctx.Err()
		}
		if rej, ok := errors.AsType[*RejectedError](err); ok {
			p.setStatus(func(s *PushStatus) {
				s.State = PushRejected
				s.LastError = rej.Error()
			})
			log.Warn("stream rejected; not retrying", "code", rej.Code, "reason", rej.Reason)
			return rej
		}
		if camErr, ok := errors.AsType[*CameraError](err); ok && p.EndOnCameraFailure {
			p.setStatus(func(s *PushStatus) {
				s.State = PushFailed
				s.LastError = camErr.Error()
			})
			log.Warn("camera failed; the stream ends", "err", camErr)
			return camErr
		}
		if !p.retryAfter(ctx, bo, err, "camera session ended") {
			p.setStatus(func(s *PushStatus) { s.State = PushStopped })
			return ctx.Err()
		}
	}
}

// retryAfter shows err, waits out the next backoff delay and reports
// whether ctx is still alive.
func (p *Pusher) retryAfter(ctx context.Context, bo *backoff, err error, msg string) bool {
	delay := bo.next()
	p.setStatus(func(s *PushStatus) {
		s.State = PushRetrying
		s.LastError = err.Error()
	})
	p.logger().Warn(msg+"; retrying", "err", err, "retry_in", delay.Round(time.Millisecond))
	return sleepCtx(ctx, delay)
}

// cameraSession runs one camera connection and, while it delivers, worker
// connections one after the other (feedWorkers).
func (p *Pusher) cameraSession(parent context.Context, bo *backoff) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	p.setStatus(func(s *PushStatus) { s.State = PushConnecting })

	var (
		buf        *replayBuffer
		workerDone chan struct{}
	)
	onTracks := func(tracks []media.Track) error {
		if p.OnCameraOpen != nil {
			p.OnCameraOpen()
		}
		buf = newReplayBuffer(p, tracks[0].ID)
		workerDone = make(chan struct{})
		go func() {
			defer close(workerDone)
			cancel(p.feedWorkers(ctx, bo, tracks, buf))
		}()
		return nil
	}
	onFrame := func(f media.Frame) error {
		if buf == nil {
			return errors.New("source delivered a frame before its tracks")
		}
		buf.add(f)
		return nil
	}

	err := p.Source.Run(ctx, onTracks, onFrame)
	switch {
	case ctx.Err() != nil:
		// The worker side ended the session (its cause) or parent ended.
		err = context.Cause(ctx)
	case err == nil:
		err = &CameraError{Err: errors.New("the camera ended its stream")}
	case !errors.Is(err, ErrTracksChanged):
		err = &CameraError{Err: err}
	}
	cancel(err)
	if workerDone != nil {
		<-workerDone
	}
	return err
}

// feedWorkers connects to workers until ctx ends or one rejects the
// stream, replaying the buffer on every new connection.
func (p *Pusher) feedWorkers(ctx context.Context, bo *backoff, tracks []media.Track, buf *replayBuffer) error {
	for {
		p.setStatus(func(s *PushStatus) {
			s.State = PushConnecting
			s.Attempts++
		})
		liveFor, err := p.connect(ctx, tracks, buf)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if _, ok := errors.AsType[*RejectedError](err); ok {
			return err
		}
		if liveFor >= healthyAfter {
			bo.reset()
		}
		if !p.retryAfter(ctx, bo, err, "worker connection lost") {
			return context.Cause(ctx)
		}
	}
}

// connect runs one worker connection: token, handshake, replay, then live
// frames until the connection or ctx ends. It reports how long the
// connection was live.
func (p *Pusher) connect(ctx context.Context, tracks []media.Track, buf *replayBuffer) (time.Duration, error) {
	conn, welcome, workerURL, err := p.open(ctx, tracks)
	if err != nil {
		return 0, err
	}
	replay := buf.rewind()
	liveAt := time.Now()
	p.setStatus(func(s *PushStatus) {
		s.State = PushLive
		s.WorkerSessionID = welcome.SessionID
	})
	p.logger().Info("stream live", "worker", RedactURL(workerURL), "worker_session", welcome.SessionID,
		"codec", tracks[0].Codec, "replayed_frames", replay)

	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ws := &workerConn{p: p, conn: conn, buf: buf, writerDone: make(chan struct{})}
	ws.start(cctx, cancel)
	<-cctx.Done()
	err = context.Cause(cctx)
	code, reason := websocket.CloseNormalClosure, "stream stopped"
	if ctx.Err() == nil {
		// This connection failed; the Pusher resumes on another one.
		code, reason = websocket.CloseGoingAway, "agent reconnecting"
	}
	ws.shutdown(cancel, code, reason)
	return time.Since(liveAt), err
}

// open takes a token and dials the worker, holding a slot of Dials (if
// set) meanwhile; the camera goes on filling the replay buffer.
func (p *Pusher) open(ctx context.Context, tracks []media.Track) (conn *websocket.Conn, welcome media.Welcome, workerURL string, err error) {
	if p.Dials != nil {
		select {
		case p.Dials <- struct{}{}:
		case <-ctx.Done():
			return nil, media.Welcome{}, "", context.Cause(ctx)
		}
		defer func() { <-p.Dials }()
	}
	token, workerURL, err := p.Tokens(ctx)
	if err != nil {
		return nil, media.Welcome{}, "", fmt.Errorf("stream token: %w", err)
	}
	conn, welcome, err = p.dial(ctx, workerURL, token, tracks)
	return conn, welcome, workerURL, err
}

// dial connects to the worker and performs the Hello/Welcome handshake.
func (p *Pusher) dial(ctx context.Context, workerURL, token string, tracks []media.Track) (*websocket.Conn, media.Welcome, error) {
	d := p.Dialer
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	}
	conn, resp, err := d.DialContext(ctx, workerURL, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return nil, media.Welcome{}, &RejectedError{Code: media.CloseBadToken, Reason: "upgrade refused: " + resp.Status}
		}
		return nil, media.Welcome{}, fmt.Errorf("dial worker %s: %w", RedactURL(workerURL), err)
	}
	// The worker sends only a Welcome and control frames.
	conn.SetReadLimit(media.MaxHelloSize)

	fail := func(err error) (*websocket.Conn, media.Welcome, error) {
		conn.Close()
		return nil, media.Welcome{}, err
	}
	// Hang up if ctx ends during the handshake.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	hello, err := json.Marshal(media.Hello{Version: media.ProtocolVersion, Token: token, Tracks: tracks, Clock: time.Now().UnixNano()})
	if err != nil {
		return fail(fmt.Errorf("encode hello: %w", err))
	}
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := conn.WriteMessage(websocket.TextMessage, hello); err != nil {
		return fail(fmt.Errorf("send hello: %w", err))
	}
	// Authorizing a token involves the control plane: allow the whole
	// keepalive window for it.
	_ = conn.SetReadDeadline(time.Now().Add(media.KeepaliveTimeout))
	typ, msg, err := conn.ReadMessage()
	if err != nil {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		return fail(closeErr("await welcome", err))
	}
	if typ != websocket.TextMessage {
		return fail(errors.New("worker answered the hello with a binary message"))
	}
	var welcome media.Welcome
	if err := json.Unmarshal(msg, &welcome); err != nil {
		return fail(fmt.Errorf("decode welcome: %w", err))
	}
	if !stop() {
		return fail(ctx.Err())
	}
	_ = conn.SetReadDeadline(time.Time{})
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, welcome, nil
}

// closeErr turns a close from the worker into a *RejectedError when a
// retry cannot help.
func closeErr(op string, err error) error {
	if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
		switch ce.Code {
		case media.CloseBadToken, media.CloseUnsupportedVersion, media.CloseBadHello, media.CloseSessionEnded:
			return &RejectedError{Code: ce.Code, Reason: ce.Text}
		}
		return fmt.Errorf("%s: worker closed the stream: %w", op, err)
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return fmt.Errorf("%s: worker silent for %s: %w", op, media.KeepaliveTimeout, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// workerConn is one live connection to a worker: a writer goroutine that
// owns all data writes (frames from the replay buffer, pings, the final
// close) and a reader goroutine that notices closes, pongs and silence.
type workerConn struct {
	p    *Pusher
	conn *websocket.Conn
	buf  *replayBuffer

	wg         sync.WaitGroup
	writerDone chan struct{}
}

func (w *workerConn) start(ctx context.Context, cancel context.CancelCauseFunc) {
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		defer close(w.writerDone)
		if err := w.writeLoop(ctx); err != nil {
			cancel(err)
		}
	}()
	go func() {
		defer w.wg.Done()
		cancel(w.readLoop())
	}()
}

func (w *workerConn) writeLoop(ctx context.Context) error {
	interval := w.p.PingInterval
	if interval <= 0 {
		interval = media.KeepaliveTimeout / 4
	}
	ping := time.NewTicker(interval)
	defer ping.Stop()
	sendPing := func() error {
		if err := w.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
			return fmt.Errorf("send ping: %w", err)
		}
		return nil
	}
	var buf []byte
	for {
		f, seq, ok := w.buf.next()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-w.buf.notify:
			case <-ping.C:
				if err := sendPing(); err != nil {
					return err
				}
			}
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		buf = media.AppendFrame(buf[:0], f)
		_ = w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := w.conn.WriteMessage(websocket.BinaryMessage, buf); err != nil {
			return fmt.Errorf("send frame: %w", err)
		}
		w.buf.sent(seq, f)
		w.p.sent.Add(1)
		if cap(buf) > 4<<20 {
			buf = nil // do not pin a rare huge frame's buffer
		}
		select {
		case <-ping.C:
			if err := sendPing(); err != nil {
				return err
			}
		default:
		}
	}
}

func (w *workerConn) readLoop() error {
	extend := func() { _ = w.conn.SetReadDeadline(time.Now().Add(media.KeepaliveTimeout)) }
	extend()
	w.conn.SetPongHandler(func(string) error { extend(); return nil })
	w.conn.SetPingHandler(func(data string) error {
		extend()
		err := w.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		if _, _, err := w.conn.ReadMessage(); err != nil {
			return closeErr("stream", err)
		}
		// The protocol has no worker messages after the Welcome; ignore
		// any for forward compatibility.
		extend()
	}
}

// shutdown stops the writer, says goodbye with a close frame and waits for
// both goroutines. The close handshake is bounded: a dead worker costs at
// most a second.
func (w *workerConn) shutdown(cancel context.CancelCauseFunc, code int, reason string) {
	cancel(errors.New("shutting down"))
	<-w.writerDone
	_ = w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	_ = w.conn.SetReadDeadline(time.Now().Add(time.Second))
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	w.conn.Close()
	w.wg.Wait()
}

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
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultQueueFrames = 256
	DefaultQueueBytes  = 32 << 20
)

// healthyAfter is how long an attempt must stay live before the backoff
// starts again from its minimum; a worker that accepts and drops streams
// in a loop keeps the delay growing.
const healthyAfter = 30 * time.Second

// writeTimeout bounds one WebSocket write: a worker that does not read for
// this long is treated as gone.
const writeTimeout = 10 * time.Second

// Pusher forwards one Source to a media worker and keeps doing so across
// camera and worker failures until its context ends or the stream is
// rejected.
//
// Every attempt opens the camera, waits for its tracks, takes a token from
// Tokens, dials the worker, sends the Hello and waits for the Welcome, then
// streams frames as binary messages and pings every PingInterval. When
// either end fails, both are closed and the next attempt starts after a
// capped exponential backoff with jitter (MinBackoff doubling to
// MaxBackoff), so every attempt begins with a keyframe and fresh tracks.
//
// With EndOnCameraFailure (record streams: their supervisor retries with
// its own backoff and shows the error) a camera failure ends Run with the
// *CameraError instead; worker failures are still retried. A camera that
// changed its stream parameters (ErrTracksChanged) is not a failure.
//
// Back-pressure: frames wait in a queue bounded by QueueFrames and
// QueueBytes. When the worker reads slower than the camera sends and the
// queue is full, the Pusher drops the frame and every following non-key
// frame until a keyframe fits again: the worker sees a gap, never a frame
// whose references are missing, and the agent's memory stays bounded.
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

	QueueFrames  int           // default DefaultQueueFrames
	QueueBytes   int           // default DefaultQueueBytes
	MinBackoff   time.Duration // default DefaultMinBackoff
	MaxBackoff   time.Duration // default DefaultMaxBackoff
	PingInterval time.Duration // default media.KeepaliveTimeout / 4

	// EndOnCameraFailure: a camera failure ends Run (see above).
	EndOnCameraFailure bool
	// OnCameraOpen, if set, is called at every attempt once the camera
	// delivered its tracks, before the worker is dialled.
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
	bo := backoff{min: p.MinBackoff, max: p.MaxBackoff}
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
		p.setStatus(func(s *PushStatus) {
			s.State = PushConnecting
			s.Attempts++
		})
		liveFor, err := p.attempt(ctx)
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
		if liveFor >= healthyAfter {
			bo.reset()
		}
		delay := bo.next()
		p.setStatus(func(s *PushStatus) {
			s.State = PushRetrying
			s.LastError = err.Error()
		})
		log.Warn("stream interrupted; retrying", "err", err, "retry_in", delay.Round(time.Millisecond))
		if !sleepCtx(ctx, delay) {
			p.setStatus(func(s *PushStatus) { s.State = PushStopped })
			return ctx.Err()
		}
	}
}

// attempt runs one camera connection and at most one worker connection.
// It reports how long the worker connection was live.
func (p *Pusher) attempt(parent context.Context) (time.Duration, error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)

	var (
		ws        *workerConn
		liveAt    time.Time
		workerErr error // the worker side failed in onTracks
	)
	onTracks := func(tracks []media.Track) error {
		if p.OnCameraOpen != nil {
			p.OnCameraOpen()
		}
		if p.Dials != nil {
			select {
			case p.Dials <- struct{}{}:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		token, workerURL, err := p.Tokens(ctx)
		var conn *websocket.Conn
		var welcome media.Welcome
		if err == nil {
			conn, welcome, err = p.dial(ctx, workerURL, token, tracks)
		} else {
			err = fmt.Errorf("stream token: %w", err)
		}
		if p.Dials != nil {
			<-p.Dials
		}
		if err != nil {
			workerErr = err
			return err
		}
		ws = p.newWorkerConn(conn)
		ws.start(ctx, cancel)
		liveAt = time.Now()
		p.setStatus(func(s *PushStatus) {
			s.State = PushLive
			s.WorkerSessionID = welcome.SessionID
		})
		p.logger().Info("stream live", "worker", RedactURL(workerURL), "worker_session", welcome.SessionID,
			"codec", tracks[0].Codec)
		return nil
	}
	onFrame := func(f media.Frame) error {
		if ws == nil {
			return errors.New("source delivered a frame before its tracks")
		}
		ws.enqueue(f)
		return nil
	}

	err := p.Source.Run(ctx, onTracks, onFrame)
	switch {
	case ctx.Err() != nil:
		// The worker connection failed (its cause) or parent ended.
		err = context.Cause(ctx)
	case workerErr != nil:
		err = workerErr
	case err == nil:
		err = &CameraError{Err: errors.New("the camera ended its stream")}
	case !errors.Is(err, ErrTracksChanged):
		err = &CameraError{Err: err}
	}
	if ws != nil {
		code, reason := websocket.CloseNormalClosure, "stream stopped"
		if parent.Err() == nil {
			// The agent will come back with a new connection; tell the
			// worker this one ends abnormally.
			code, reason = websocket.CloseGoingAway, "agent reconnecting"
		}
		ws.shutdown(cancel, code, reason)
	}
	var live time.Duration
	if !liveAt.IsZero() {
		live = time.Since(liveAt)
	}
	return live, err
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
// owns all data writes (frames, pings, the final close) and a reader
// goroutine that notices closes, pongs and silence.
type workerConn struct {
	p     *Pusher
	conn  *websocket.Conn
	queue chan media.Frame

	queued     atomic.Int64 // payload bytes in queue
	maxBytes   int64
	dropping   bool // owned by the Source's goroutine (enqueue)
	dropStreak uint64

	wg         sync.WaitGroup
	writerDone chan struct{}
}

func (p *Pusher) newWorkerConn(conn *websocket.Conn) *workerConn {
	n := p.QueueFrames
	if n <= 0 {
		n = DefaultQueueFrames
	}
	b := p.QueueBytes
	if b <= 0 {
		b = DefaultQueueBytes
	}
	return &workerConn{p: p, conn: conn, queue: make(chan media.Frame, n), maxBytes: int64(b), writerDone: make(chan struct{})}
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

// enqueue applies the drop policy described on Pusher.
func (w *workerConn) enqueue(f media.Frame) {
	log := w.p.logger()
	if w.dropping && !f.Keyframe {
		w.dropStreak++
		w.p.drops.Add(1)
		return
	}
	size := int64(len(f.Payload))
	if w.queued.Load()+size <= w.maxBytes {
		select {
		case w.queue <- f:
			w.queued.Add(size)
			if w.dropping {
				log.Info("worker caught up; frames flow again", "dropped", w.dropStreak)
				w.dropping, w.dropStreak = false, 0
			}
			return
		default:
		}
	}
	if !w.dropping {
		log.Warn("worker too slow; dropping frames until the next keyframe")
	}
	w.dropping = true
	w.dropStreak++
	w.p.drops.Add(1)
}

func (w *workerConn) writeLoop(ctx context.Context) error {
	interval := w.p.PingInterval
	if interval <= 0 {
		interval = media.KeepaliveTimeout / 4
	}
	ping := time.NewTicker(interval)
	defer ping.Stop()
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-w.queue:
			w.queued.Add(-int64(len(f.Payload)))
			buf = media.AppendFrame(buf[:0], f)
			_ = w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := w.conn.WriteMessage(websocket.BinaryMessage, buf); err != nil {
				return fmt.Errorf("send frame: %w", err)
			}
			w.p.sent.Add(1)
			if cap(buf) > 4<<20 {
				buf = nil // do not pin a rare huge frame's buffer
			}
		case <-ping.C:
			if err := w.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return fmt.Errorf("send ping: %w", err)
			}
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

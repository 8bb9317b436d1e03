package mediaworker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/recording"
)

// Server is the media worker's WebSocket ingest: one stream per connection,
// authorized by the control plane, segmented to the spool.
type Server struct {
	Control ControlPlane
	// Spool takes the finished segments; streams write theirs in its
	// WorkDir.
	Spool *Spool
	// SegmentLength is the target segment length when the grant names none.
	SegmentLength time.Duration
	// ClockTolerance is how far an agent's clock may be off before its
	// footage is restamped with this worker's clock (default
	// DefaultClockTolerance).
	ClockTolerance time.Duration
	Logger         *slog.Logger

	upgrader websocket.Upgrader
	streams  sync.WaitGroup
	mu       sync.Mutex
	conns    map[*websocket.Conn]struct{}
	closing  bool
}

// Handler serves the ingest WebSocket at /v1/ingest and /healthz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ingest", s.ingest)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	return mux
}

// Wait blocks until every stream handler has returned.
func (s *Server) Wait() { s.streams.Wait() }

// Close ends every stream with "going away" (each flushes its partial
// segment to the spool and reports stopped) and refuses new ones; then it
// waits for the stream handlers to return.
func (s *Server) Close() {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "media worker shutting down")
		_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.Close()
	}
	s.mu.Unlock()
	s.Wait()
}

// track adds or removes a live connection; it refuses new ones once closing.
func (s *Server) track(c *websocket.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closing {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*websocket.Conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	// Counted before the upgrade hijacks the connection: until then
	// http.Server.Shutdown waits for this handler, so Wait cannot miss it.
	s.streams.Add(1)
	defer s.streams.Done()
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered already
	}
	defer conn.Close()
	if !s.track(conn, true) {
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "media worker shutting down")
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		return
	}
	defer s.track(conn, false)
	conn.SetReadLimit(media.MaxFramePayload + 1024)
	st := &stream{srv: s, conn: conn, log: s.log().With("remote", r.RemoteAddr)}
	code, reason := st.run(r.Context())
	if code == websocket.CloseAbnormalClosure {
		// 1006 means "no close frame": it must never be sent (RFC 6455
		// 7.4.1), and a peer that is still there would reject it.
		return
	}
	msg := websocket.FormatCloseMessage(code, reason)
	_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
}

// stream is one agent connection.
type stream struct {
	srv    *Server
	conn   *websocket.Conn
	log    *slog.Logger
	grant  recording.Grant
	ending bool // flushing the last segment: no heartbeat
}

// run handles the connection and returns the close code and reason to send.
func (st *stream) run(ctx context.Context) (int, string) {
	conn := st.conn
	conn.SetReadDeadline(time.Now().Add(media.KeepaliveTimeout))
	typ, msg, err := conn.ReadMessage()
	if err != nil {
		return media.CloseBadHello, "no hello"
	}
	helloAt := time.Now()
	if typ != websocket.TextMessage {
		return media.CloseBadHello, "first message must be a text hello"
	}
	hello, err := media.ReadHello(msg)
	if errors.Is(err, media.ErrUnsupportedVersion) {
		return media.CloseUnsupportedVersion, "unsupported protocol version"
	}
	if err != nil {
		return media.CloseBadHello, truncate(err.Error())
	}
	st.grant, err = st.srv.Control.Authorize(ctx, hello.Token)
	if err != nil {
		if apiclient.IsPermanent(err) {
			st.log.Info("stream refused", "err", err)
			return media.CloseBadToken, "token refused"
		}
		st.log.Error("authorize failed", "err", err)
		return websocket.CloseTryAgainLater, "control plane unavailable"
	}
	st.log = st.log.With("session", st.grant.SessionID, "channel", st.grant.ChannelID)
	clock := clockCheck{tolerance: st.srv.ClockTolerance, log: st.log}
	if clock.tolerance <= 0 {
		clock.tolerance = DefaultClockTolerance
	}
	if hello.Clock != 0 {
		clock.compare(time.Unix(0, hello.Clock), helloAt, "hello")
	}
	target := st.srv.SegmentLength
	if st.grant.SegmentSeconds > 0 {
		target = time.Duration(st.grant.SegmentSeconds) * time.Second
	}
	welcome, _ := json.Marshal(media.Welcome{SessionID: st.grant.SessionID, SegmentSeconds: int(target / time.Second)})
	if err := conn.WriteMessage(websocket.TextMessage, welcome); err != nil {
		return websocket.CloseAbnormalClosure, ""
	}

	dir := st.srv.Spool.sessionDir(st.grant.SessionID)
	seg, err := NewSegmenter(SegmenterConfig{Dir: dir, Tracks: hello.Tracks, Target: target,
		SessionID: st.grant.SessionID, ChannelID: st.grant.ChannelID, OnSegment: st.spool})
	if err != nil {
		return media.CloseBadHello, truncate(err.Error())
	}
	// Whatever ends the stream, the partial segment is flushed to the spool
	// and the session reported stopped. Only the agent's normal close ends
	// the stream for good; after any other end the agent resumes it on a new
	// connection from the last keyframe it sent, so the segment stops before
	// the last keyframe received: the resumed session records the rest, and
	// no instant is recorded twice (docs/protocol.md, "Resuming a stream").
	stopped := false // by the agent's normal close
	defer func() {
		st.ending = true // the stopped report below says all there is to say
		closeSeg := seg.CloseBeforeLastKeyframe
		if stopped {
			closeSeg = seg.Close
		}
		if err := closeSeg(); err != nil {
			st.log.Error("flush last segment", "err", err)
		}
		os.Remove(dir)
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.srv.Control.Stopped(stopCtx, st.grant.SessionID); err != nil {
			st.log.Warn("report stopped", "err", err)
		}
		st.log.Info("stream ended")
	}()
	if err := st.srv.Control.Started(ctx, st.grant.SessionID); err != nil {
		st.log.Warn("report started", "err", err)
	}
	st.log.Info("stream accepted", "tracks", len(hello.Tracks), "segment", target)

	conn.SetPingHandler(func(data string) error {
		conn.SetReadDeadline(time.Now().Add(media.KeepaliveTimeout))
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	for {
		conn.SetReadDeadline(time.Now().Add(media.KeepaliveTimeout))
		typ, msg, err := conn.ReadMessage()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				stopped = websocket.IsCloseError(err, websocket.CloseNormalClosure)
				return websocket.CloseNormalClosure, ""
			}
			st.log.Info("stream connection lost", "err", err)
			return websocket.CloseAbnormalClosure, ""
		}
		if typ != websocket.BinaryMessage {
			return media.CloseBadFrame, "frames must be binary messages"
		}
		f, err := media.UnmarshalFrame(msg)
		if err != nil {
			st.log.Warn("malformed frame, closing this stream", "err", err)
			return media.CloseBadFrame, truncate(err.Error())
		}
		f.Wall = clock.frame(f.Wall, time.Now())
		if err := seg.WriteFrame(f); err != nil {
			if errors.Is(err, ErrUnknownTrack) || errors.Is(err, ErrNonMonotonicDTS) || errors.Is(err, ErrBadPayload) {
				st.log.Warn("bad frame, closing this stream", "err", err)
				return media.CloseBadFrame, truncate(err.Error())
			}
			st.log.Error("segmenter", "err", err)
			return websocket.CloseInternalServerErr, "segmenter failed"
		}
	}
}

// spool hands a finished segment to the spool under its S3 key.
func (st *stream) spool(s Segment) error {
	r, err := segmentReport(s, st.grant.SessionID, st.grant.ChannelID)
	if err != nil {
		return err
	}
	if err := st.srv.Spool.Add(s.Path, st.grant.SessionID, st.grant.ChannelID, r); err != nil {
		return err
	}
	st.heartbeat()
	return nil
}

// heartbeat repeats the started report when a segment closes. Segment
// reports wait for their upload, so during an S3 outage they stop; the
// session workflow counts a repeated started report as a sign of life, so a
// stream that is still flowing is not declared lost. It never blocks the
// stream: a slow or unreachable API only costs a log line.
func (st *stream) heartbeat() {
	if st.ending {
		return
	}
	st.srv.streams.Add(1)
	go func() {
		defer st.srv.streams.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := st.srv.Control.Started(ctx, st.grant.SessionID); err != nil {
			st.log.Warn("session heartbeat", "err", err)
		}
	}()
}

// truncate keeps a close reason within the 123 bytes a close frame allows.
func truncate(s string) string {
	if len(s) > 120 {
		return s[:120]
	}
	return s
}

// ObjectUploader uploads spooled files with the S3 client.
type ObjectUploader struct{ Objects *objectstore.Client }

// PutFile uploads the file at path to key.
func (u ObjectUploader) PutFile(ctx context.Context, key, path, contentType string, metadata map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	return u.Objects.PutWithOptions(ctx, key, f, info.Size(),
		objectstore.PutOptions{ContentType: contentType, Metadata: metadata})
}

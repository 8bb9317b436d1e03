package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// StreamTarget is what the control plane says a stream token is for.
type StreamTarget struct {
	SessionID string
	ChannelID string
	Quality   string
	// WorkerURL is the media worker's WebSocket URL for this token.
	WorkerURL string
	// CameraURL is the full camera stream address including credentials,
	// e.g. rtsp://user:pass@192.168.1.20:554/stream1. Never log it.
	CameraURL string
	// Protocol is the camera protocol: "rtsp", "mjpeg" or "http"; empty
	// means "decide by the URL scheme".
	Protocol string
	// Transport is the RTSP transport (see RTSPSource.Transport).
	Transport string
	// Record: the stream is a channel's continuous recording, started by a
	// record command (see Manager.Record), not by an app.
	Record bool
}

// Resolver asks the control plane what a stream token grants.
type Resolver interface {
	// ResolveStream returns the target of a token. An error wrapping
	// ErrInvalidToken means the token is bad or expired (HTTP 401);
	// anything else is treated as the control plane being unavailable.
	ResolveStream(ctx context.Context, token string) (StreamTarget, error)
}

// TokenIssuer obtains fresh stream tokens for a channel, so a stream can
// resume after its worker connection ends (tokens are single-use).
type TokenIssuer interface {
	// IssueStreamToken returns a new token and the worker URL it is valid
	// for; record asks for a token of the channel's continuous recording.
	// An error wrapping a *RejectedError ends the stream for good.
	IssueStreamToken(ctx context.Context, channelID, quality string, record bool) (token, workerURL string, err error)
}

// Errors Manager.Start and Manager.Stop return; the HTTP API maps them to
// status codes.
var (
	ErrInvalidToken   = errors.New("invalid stream token")
	ErrCameraMismatch = errors.New("camera_url does not match the camera registered for this stream")
	ErrStreamExists   = errors.New("stream session already running")
	ErrStreamNotFound = errors.New("stream session not found")
	ErrManagerClosed  = errors.New("agent shutting down")
)

// StreamInfo is the public view of one stream. It never holds credentials.
type StreamInfo struct {
	SessionID       string     `json:"session_id"`
	ChannelID       string     `json:"channel_id"`
	Quality         string     `json:"quality,omitempty"`
	Record          bool       `json:"record,omitempty"`
	Camera          string     `json:"camera"`
	Status          PushState  `json:"status"`
	WorkerSessionID string     `json:"worker_session_id,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	Attempts        int        `json:"attempts"`
	FramesSent      uint64     `json:"frames_sent"`
	FramesDropped   uint64     `json:"frames_dropped"`
	StartedAt       time.Time  `json:"started_at"`
	EndedAt         *time.Time `json:"ended_at,omitempty"`
}

// ManagerConfig holds a Manager's dependencies.
type ManagerConfig struct {
	Resolver Resolver
	// Tokens may be nil: a stream then ends when its first worker
	// connection does, since its token cannot be reused.
	Tokens TokenIssuer
	Logger *slog.Logger
	// NewSource builds the camera source of a target; nil means
	// NewSource (the package function).
	NewSource func(StreamTarget, *slog.Logger) (Source, error)
	// TunePusher, if set, adjusts every Pusher before it runs (queue
	// sizes, backoff).
	TunePusher func(*Pusher)
	// KeepEnded is how long ended streams stay listed; zero means 10 min.
	KeepEnded time.Duration
	// MaxDials bounds the worker connections being opened at once (token,
	// handshake and the session's authorization by the control plane);
	// zero means DefaultMaxDials. When thousands of streams start together
	// (an agent reconnecting) they reach the control plane a few at a time
	// rather than all at once, which times their authorizations out.
	MaxDials int
}

// DefaultMaxDials: worker connections an agent opens at once.
const DefaultMaxDials = 16

// Manager runs one Pusher per stream session: the streams apps start
// (Start) and the channels' continuous recordings (Record).
type Manager struct {
	cfg    ManagerConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	dials chan struct{} // worker connections being opened

	mu      sync.Mutex
	closed  bool
	streams map[string]*stream // by session id
	records map[string]*stream // the latest record stream of each channel
}

type stream struct {
	target  StreamTarget
	pusher  *Pusher
	cancel  context.CancelFunc
	opened  chan struct{} // closed once the camera first delivered its tracks
	done    chan struct{}
	err     error // what ended Run; set before done closes
	started time.Time
	ended   time.Time // zero while running; guarded by Manager.mu
}

// NewManager returns a Manager; Close stops its streams.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NewSource == nil {
		cfg.NewSource = NewSource
	}
	if cfg.KeepEnded <= 0 {
		cfg.KeepEnded = 10 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel,
		dials:   make(chan struct{}, orDefault(cfg.MaxDials, DefaultMaxDials)),
		streams: make(map[string]*stream), records: make(map[string]*stream)}
}

// NewSource returns the Source for a target: RTSPSource for rtsp and
// rtsps, MJPEGSource for mjpeg, http and https.
func NewSource(t StreamTarget, log *slog.Logger) (Source, error) {
	u, err := url.Parse(t.CameraURL)
	if err != nil {
		return nil, errors.New("invalid camera url")
	}
	proto := strings.ToLower(t.Protocol)
	if proto == "" {
		proto = strings.ToLower(u.Scheme)
	}
	switch proto {
	case "rtsp", "rtsps":
		return &RTSPSource{URL: t.CameraURL, Transport: t.Transport, Logger: log}, nil
	case "mjpeg", "http", "https":
		return &MJPEGSource{URL: t.CameraURL, Logger: log}, nil
	}
	return nil, fmt.Errorf("unsupported camera protocol %q", proto)
}

// Start resolves token and starts pushing its stream. cameraURL, if not
// empty, must name the same camera (scheme, host and port) as the
// resolved target: the agent only ever pulls the registered camera, so it
// cannot be used to reach arbitrary hosts on the LAN.
func (m *Manager) Start(ctx context.Context, token, cameraURL string) (StreamInfo, error) {
	if token == "" {
		return StreamInfo{}, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	target, err := m.cfg.Resolver.ResolveStream(ctx, token)
	if err != nil {
		return StreamInfo{}, err
	}
	if target.SessionID == "" || target.CameraURL == "" || target.WorkerURL == "" {
		return StreamInfo{}, errors.New("resolver returned an incomplete stream target")
	}
	if cameraURL != "" {
		same, err := sameCamera(cameraURL, target.CameraURL)
		if err != nil {
			return StreamInfo{}, err
		}
		if !same {
			m.log.Warn("stream refused: camera_url mismatch", "session", target.SessionID,
				"channel", target.ChannelID, "requested", RedactURL(cameraURL))
			return StreamInfo{}, ErrCameraMismatch
		}
	}
	log := m.log.With("session", target.SessionID, "channel", target.ChannelID, "quality", target.Quality)
	src, err := m.cfg.NewSource(target, log)
	if err != nil {
		return StreamInfo{}, err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return StreamInfo{}, ErrManagerClosed
	}
	m.pruneLocked(time.Now())
	if old, ok := m.streams[target.SessionID]; ok && old.ended.IsZero() {
		return StreamInfo{}, ErrStreamExists
	}

	return m.infoLocked(m.launchLocked(target, token, src, log)), nil
}

// launchLocked starts pushing target from src, the first connection with
// token.
func (m *Manager) launchLocked(target StreamTarget, token string, src Source, log *slog.Logger) *stream {
	s := &stream{target: target, opened: make(chan struct{}), done: make(chan struct{}), started: time.Now()}
	var opened sync.Once
	p := &Pusher{Source: src, Tokens: m.tokenSource(token, target), Logger: log, Dials: m.dials,
		EndOnCameraFailure: target.Record, OnCameraOpen: func() { opened.Do(func() { close(s.opened) }) }}
	if target.Record {
		p.MaxBackoff = RecordMaxBackoff
	}
	if m.cfg.TunePusher != nil {
		m.cfg.TunePusher(p)
	}
	sctx, cancel := context.WithCancel(m.ctx)
	s.pusher, s.cancel = p, cancel
	m.streams[target.SessionID] = s
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(s.done)
		err := p.Run(sctx)
		m.mu.Lock()
		s.ended, s.err = time.Now(), err
		m.mu.Unlock()
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("stream ended", "err", err)
		} else {
			log.Info("stream stopped")
		}
	}()
	log.Info("stream started", "camera", RedactURL(target.CameraURL), "worker", RedactURL(target.WorkerURL), "record", target.Record)
	return s
}

// tokenSource hands out the app's token first, then fresh ones.
func (m *Manager) tokenSource(first string, t StreamTarget) TokenSource {
	var used bool
	return func(ctx context.Context) (string, string, error) {
		if !used {
			used = true
			return first, t.WorkerURL, nil
		}
		if m.cfg.Tokens == nil {
			return "", "", &RejectedError{Code: 0, Reason: "token used and no token issuer configured"}
		}
		return m.cfg.Tokens.IssueStreamToken(ctx, t.ChannelID, t.Quality, t.Record)
	}
}

// List returns every running stream and recently ended ones, oldest first.
func (m *Manager) List() []StreamInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked(time.Now())
	out := make([]StreamInfo, 0, len(m.streams))
	for _, s := range m.streams {
		out = append(out, m.infoLocked(s))
	}
	slices.SortFunc(out, func(a, b StreamInfo) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.SessionID, b.SessionID)
	})
	return out
}

// Stop ends a stream, waits for it to close its connections and forgets
// it.
func (m *Manager) Stop(ctx context.Context, sessionID string) error {
	m.mu.Lock()
	s, ok := m.streams[sessionID]
	m.mu.Unlock()
	if !ok {
		return ErrStreamNotFound
	}
	return m.stop(ctx, s)
}

// stop forgets s, ends it and waits for it to close its connections.
func (m *Manager) stop(ctx context.Context, s *stream) error {
	m.mu.Lock()
	m.forgetLocked(s)
	m.mu.Unlock()
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Manager) forgetLocked(s *stream) {
	if m.streams[s.target.SessionID] == s {
		delete(m.streams, s.target.SessionID)
	}
	if m.records[s.target.ChannelID] == s {
		delete(m.records, s.target.ChannelID)
	}
}

// Close stops every stream and waits for them.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

func (m *Manager) pruneLocked(now time.Time) {
	for _, s := range m.streams {
		if !s.ended.IsZero() && now.Sub(s.ended) > m.cfg.KeepEnded {
			m.forgetLocked(s)
		}
	}
}

func (m *Manager) infoLocked(s *stream) StreamInfo {
	st := s.pusher.Status()
	info := StreamInfo{
		SessionID:       s.target.SessionID,
		ChannelID:       s.target.ChannelID,
		Quality:         s.target.Quality,
		Record:          s.target.Record,
		Camera:          RedactURL(s.target.CameraURL),
		Status:          st.State,
		WorkerSessionID: st.WorkerSessionID,
		LastError:       st.LastError,
		Attempts:        st.Attempts,
		FramesSent:      st.FramesSent,
		FramesDropped:   st.FramesDropped,
		StartedAt:       s.started.UTC(),
	}
	if !s.ended.IsZero() {
		e := s.ended.UTC()
		info.EndedAt = &e
		if st.State != PushRejected && st.State != PushFailed {
			info.Status = PushStopped
		}
	}
	return info
}

// errBadCameraURL is wrapped for a camera_url that does not parse.
var errBadCameraURL = errors.New("invalid camera_url")

// sameCamera compares scheme, host and port (default ports filled in),
// ignoring credentials, path and case.
func sameCamera(requested, registered string) (bool, error) {
	a, err := url.Parse(requested)
	if err != nil || a.Scheme == "" || a.Host == "" {
		return false, errBadCameraURL
	}
	b, err := url.Parse(registered)
	if err != nil {
		return false, errors.New("registered camera url does not parse")
	}
	key := func(u *url.URL) string {
		scheme := strings.ToLower(u.Scheme)
		port := u.Port()
		if port == "" {
			port = defaultPorts[scheme]
		}
		return scheme + "://" + net.JoinHostPort(strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")), port)
	}
	return key(a) == key(b), nil
}

var defaultPorts = map[string]string{"rtsp": "554", "rtsps": "322", "http": "80", "https": "443"}

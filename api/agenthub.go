package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

// agentHub holds this replica's agent control connections. Each connection
// runs a Temporal worker on the agent's task queue whose one activity
// writes a command to the connection and waits for the agent's ack: any
// replica, or a workflow, reaches the agent by executing that activity
// (see package control and docs/architecture.md).
type agentHub struct {
	s        *Server
	upgrader websocket.Upgrader

	ctx    context.Context // ends when the server closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per connection handler

	mu    sync.Mutex
	conns map[uuid.UUID]*agentConn // the latest connection of each agent
}

func newAgentHub(s *Server) *agentHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &agentHub{s: s, ctx: ctx, cancel: cancel, conns: map[uuid.UUID]*agentConn{},
		upgrader: websocket.Upgrader{HandshakeTimeout: 10 * time.Second}}
}

// close drops every agent connection (their agents reconnect to another
// replica) and waits until their workers have stopped.
func (h *agentHub) close() {
	h.cancel()
	h.mu.Lock()
	for _, ac := range h.conns {
		ac.close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// agentControl upgrades an authenticated agent to its control channel and
// serves it until it drops.
func (s *Server) agentControl(c *gin.Context) {
	h := s.hub
	ag := c.MustGet(agentKey).(*store.Agent)
	if h.ctx.Err() != nil {
		fail(c, http.StatusServiceUnavailable, "shutting_down", "this API replica is shutting down")
		return
	}
	ws, err := h.upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		return // the upgrader has answered
	}
	ac := &agentConn{hub: h, agent: ag, ws: ws, pending: map[string]chan control.Ack{}, done: make(chan struct{})}
	if !h.add(ac) {
		ac.closeWith(websocket.CloseTryAgainLater, "shutting down")
		return
	}
	log := slog.With("agent", ag.ID.String())
	defer h.wg.Done()
	defer func() {
		if h.remove(ac) {
			ac.setOnline(false)
		}
	}()
	defer ac.close()

	ac.setOnline(true)
	w := worker.New(s.opts.Temporal, control.TaskQueue(ag.ID.String()), worker.Options{
		// One poller: every connected agent costs one long poll on the
		// Temporal frontend. A delivery only waits for its ack, so many
		// can be in flight: the agent bounds the work (it queues record
		// commands, runs a few at once, and answers PTZ busy when full).
		// Waiting here rather than in the task queue keeps the thousands
		// of record commands of an agent that reconnects from timing out
		// as if the agent were offline.
		MaxConcurrentActivityTaskPollers:   1,
		MaxConcurrentActivityExecutionSize: control.MaxPending,
		DisableWorkflowWorker:              true,
		Identity:                           agentWorkerIdentity(ag.ID),
	})
	w.RegisterActivityWithOptions(ac.deliver, activity.RegisterOptions{Name: control.ActivityName})
	if err := w.Start(); err != nil {
		log.Error("agent control: cannot serve the agent's task queue", "err", err)
		ac.closeWith(websocket.CloseTryAgainLater, "control channel unavailable")
		return
	}
	// Stopped once the connection is closed (below), so deliveries still in
	// flight end at once and the stop does not wait for them.
	defer w.Stop()
	log.Info("agent control: connected")
	// The supervisors of the agent's channels resume recording now that
	// their commands can be delivered; the connection does not wait.
	h.wg.Go(func() { h.announceOnline(ag.ID) })
	var pinger sync.WaitGroup
	pinger.Go(func() { ac.keepalive(s.pingInterval()) })
	err = ac.readLoop()
	ac.close()
	pinger.Wait()
	log.Info("agent control: disconnected", "err", err)
}

// add registers ac as its agent's connection, replacing (and closing) an
// older one, unless the hub is closing.
func (h *agentHub) add(ac *agentConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return false
	}
	h.wg.Add(1)
	if old := h.conns[ac.agent.ID]; old != nil {
		old.close() // a reconnect before this replica noticed the old one die
	}
	h.conns[ac.agent.ID] = ac
	return true
}

// remove forgets ac, reporting whether it was still its agent's connection.
func (h *agentHub) remove(ac *agentConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns[ac.agent.ID] == ac {
		delete(h.conns, ac.agent.ID)
		return true
	}
	return false
}

// announceOnline signals contract.SignalAgentOnline to the supervisor of
// every channel whose camera the agent pulls, so that each resumes
// recording at once rather than at its next retry (a few at a time:
// thousands of channels may come back together).
func (h *agentHub) announceOnline(agentID uuid.UUID) {
	ids, err := h.s.opts.Store.ChannelIDsByAgent(h.ctx, agentID)
	if err == nil {
		err = workflows.SignalChannels(h.ctx, h.s.opts.Temporal, ids, contract.SignalAgentOnline)
	}
	if err != nil && h.ctx.Err() == nil {
		slog.Warn("agent control: telling the agent's channel supervisors it is online", "agent", agentID.String(), "err", err)
	}
}

// current is the agent's live connection on this replica, if any.
func (h *agentHub) current(agentID uuid.UUID) *agentConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[agentID]
}

func agentWorkerIdentity(agentID uuid.UUID) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("api@%s/agent-%s", host, agentID)
}

// agentConn is one agent's WebSocket on this replica.
type agentConn struct {
	hub   *agentHub
	agent *store.Agent
	ws    *websocket.Conn

	writeMu sync.Mutex

	heard   atomic.Int64 // unix nanoseconds the agent last showed life
	stamped time.Time    // when setOnline last wrote; owned by keepalive

	mu      sync.Mutex
	pending map[string]chan control.Ack // command id → waiting delivery
	closed  bool
	done    chan struct{} // closed with the connection
}

func (ac *agentConn) close() { ac.closeWith(websocket.CloseGoingAway, "") }

func (ac *agentConn) closeWith(code int, reason string) {
	ac.mu.Lock()
	if ac.closed {
		ac.mu.Unlock()
		return
	}
	ac.closed = true
	close(ac.done)
	ac.mu.Unlock()
	ac.writeMu.Lock()
	_ = ac.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	ac.writeMu.Unlock()
	ac.ws.Close()
}

// readLoop reads acks until the connection fails. Anything else the agent
// sends is logged and dropped: the agent cannot make the API do anything
// over this channel.
func (ac *agentConn) readLoop() error {
	extend := func() {
		now := time.Now()
		ac.heard.Store(now.UnixNano())
		_ = ac.ws.SetReadDeadline(now.Add(ac.hub.s.keepaliveTimeout()))
	}
	extend()
	ac.ws.SetReadLimit(64 << 10)
	ac.ws.SetPongHandler(func(string) error { extend(); return nil })
	ac.ws.SetPingHandler(func(data string) error {
		extend()
		ac.writeMu.Lock()
		defer ac.writeMu.Unlock()
		err := ac.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		_, data, err := ac.ws.ReadMessage()
		if err != nil {
			return err
		}
		extend()
		var ack control.Ack
		if err := json.Unmarshal(data, &ack); err != nil || ack.ID == "" {
			slog.Warn("agent control: dropped a message that is not an ack", "agent", ac.agent.ID.String())
			continue
		}
		ac.mu.Lock()
		ch := ac.pending[ack.ID]
		delete(ac.pending, ack.ID)
		ac.mu.Unlock()
		if ch != nil {
			ch <- ack // buffered: never blocks
		}
	}
}

// setOnline records the agent's online state and that it was seen now.
// Its own context: the offline mark must be written even as the hub shuts
// down.
func (ac *agentConn) setOnline(online bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ac.hub.ctx), 5*time.Second)
	defer cancel()
	ac.stamped = time.Now()
	if err := ac.hub.s.opts.Store.SetAgentOnline(ctx, ac.agent.ID, online); err != nil {
		slog.Warn("agent control: cannot record the agent's online state", "agent", ac.agent.ID.String(), "online", online, "err", err)
	}
}

// keepalive pings the agent until the connection closes, and once per
// interval in which the agent showed life stamps it online again: that
// refreshes last_seen_at (at most once per interval), and repairs an
// offline mark written by a replica whose older connection of the agent
// closed after this one opened.
func (ac *agentConn) keepalive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ac.done:
			return
		case <-t.C:
			ac.writeMu.Lock()
			err := ac.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second))
			ac.writeMu.Unlock()
			if err != nil {
				ac.close()
				return
			}
			if time.Unix(0, ac.heard.Load()).After(ac.stamped) {
				ac.setOnline(true)
			}
		}
	}
}

// deliver is the AgentCommand activity of this agent's task queue: it adds
// the camera's address and credentials to the command, writes it to the
// agent and waits for the ack (bounded by the activity's start-to-close
// timeout). An ack with ok:false is a result, not an error: the agent did
// answer.
func (ac *agentConn) deliver(ctx context.Context, cmd control.Command) (control.Ack, error) {
	if err := cmd.Validate(); err != nil {
		return control.Ack{}, temporal.NewNonRetryableApplicationError(err.Error(), control.ErrBadCommand, nil)
	}
	wire, err := ac.withCamera(ctx, cmd)
	if err != nil {
		return control.Ack{}, err
	}
	msg, err := json.Marshal(wire)
	if err != nil {
		return control.Ack{}, temporal.NewNonRetryableApplicationError("encode command", control.ErrBadCommand, err)
	}

	answer := make(chan control.Ack, 1)
	ac.mu.Lock()
	if ac.closed {
		ac.mu.Unlock()
		// This worker is stopping; the agent may already be back on this
		// replica through a new connection.
		if cur := ac.hub.current(ac.agent.ID); cur != nil && cur != ac {
			return cur.deliver(ctx, cmd)
		}
		return control.Ack{}, temporal.NewNonRetryableApplicationError("the agent disconnected", control.ErrOffline, nil)
	}
	ac.pending[cmd.ID] = answer
	ac.mu.Unlock()
	defer func() {
		ac.mu.Lock()
		delete(ac.pending, cmd.ID)
		ac.mu.Unlock()
	}()

	ac.writeMu.Lock()
	_ = ac.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err = ac.ws.WriteMessage(websocket.TextMessage, msg)
	ac.writeMu.Unlock()
	if err != nil {
		ac.close()
		return control.Ack{}, temporal.NewNonRetryableApplicationError("the agent disconnected before the command was sent", control.ErrOffline, nil)
	}
	slog.Debug("agent control: command sent", "agent", ac.agent.ID.String(), "command", cmd)
	select {
	case ack := <-answer:
		return ack, nil
	case <-ac.done:
		return control.Ack{}, temporal.NewNonRetryableApplicationError("the agent disconnected before acknowledging", control.ErrTimeout, nil)
	case <-ctx.Done():
		return control.Ack{}, ctx.Err()
	}
}

// withCamera returns cmd with Camera filled from the database: what the
// agent needs to reach the camera, credentials included (and, for a record
// command, Stream). Only a camera of this agent is ever sent to it; a
// stop-record command needs only that check.
func (ac *agentConn) withCamera(ctx context.Context, cmd control.Command) (control.Command, error) {
	id, err := uuid.Parse(cmd.CameraID)
	if err != nil {
		return cmd, temporal.NewNonRetryableApplicationError("camera_id is not a UUID", control.ErrBadCommand, nil)
	}
	cam, err := ac.hub.s.opts.Store.GetCamera(ctx, ac.agent.AccountID, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (cam.AgentID == nil || *cam.AgentID != ac.agent.ID)) {
		return cmd, temporal.NewNonRetryableApplicationError("the camera is not assigned to this agent", control.ErrBadCommand, nil)
	}
	if err != nil {
		return cmd, fmt.Errorf("read camera: %w", err)
	}
	switch cmd.Type {
	case control.TypePTZ:
		cmd.Camera = &control.Camera{Username: cam.Username, Password: cam.Password,
			ONVIF: net.JoinHostPort(cam.Host, strconv.Itoa(cam.Port))}
	case control.TypeSnapshot:
		if cam.SnapshotURL == "" {
			return cmd, temporal.NewNonRetryableApplicationError("the camera has no snapshot_url", control.ErrBadCommand, nil)
		}
		cmd.Camera = &control.Camera{SnapshotURL: withCredentials(cam.SnapshotURL, cam.Username, cam.Password)}
	case control.TypeRecord:
		return ac.withStream(ctx, cmd, cam)
	}
	return cmd, nil
}

// withStream fills a record command: the camera stream of the command's
// quality, credentials included, and a fresh record token for a new session
// of the channel on its NVR's media worker.
func (ac *agentConn) withStream(ctx context.Context, cmd control.Command, cam *store.Camera) (control.Command, error) {
	bad := func(msg string) (control.Command, error) {
		return cmd, temporal.NewNonRetryableApplicationError(msg, control.ErrBadCommand, nil)
	}
	chID, err := uuid.Parse(cmd.ChannelID)
	if err != nil {
		return bad("channel_id is not a UUID")
	}
	ch, err := ac.hub.s.opts.Store.GetChannel(ctx, ac.agent.AccountID, chID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ch.CameraID != cam.ID) {
		return bad("the channel is not one of this camera")
	}
	if err != nil {
		return cmd, fmt.Errorf("read channel: %w", err)
	}
	claims, token, err := ac.hub.s.newSession(ctx, ch, cmd.Quality, true)
	if se, ok := errors.AsType[*sessionError](err); ok {
		return bad(se.message)
	}
	if err != nil {
		return cmd, err
	}
	cmd.Camera = &control.Camera{StreamURL: cameraURL(cam, streamPath(cam, cmd.Quality)), Protocol: cam.Protocol}
	cmd.Stream = &control.Stream{Token: token, SessionID: claims.SessionID, WorkerURL: claims.WorkerURL}
	return cmd, nil
}

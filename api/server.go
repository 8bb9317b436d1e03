// Package api is the control plane's REST API: the public /v1 calls apps
// make (API-key auth, account scoped), the internal /internal/v1 calls media
// workers and agents make, health, metrics and the OpenAPI document.
package api

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"

	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/streamtoken"
	"github.com/opennvr/vms/workflows/contract"
)

//go:embed openapi.yaml
var openAPISpec []byte

// Presigner hands out time-limited S3 URLs.
type Presigner interface {
	PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
	PresignPut(ctx context.Context, key, contentType string, expiry time.Duration) (string, error)
}

// SegmentRecorder records a segment whose stream workflow has already ended
// (a late upload from the media worker's spool), and wakes waiting clips.
type SegmentRecorder interface {
	RecordLateSegment(ctx context.Context, sessionID, channelID string, seg recording.SegmentReport) error
}

// Options are the server's dependencies and limits.
type Options struct {
	Store   *store.Store
	Objects Presigner
	// Temporal starts and signals the workflows; nil serves only the calls
	// that need none (then the others answer 503).
	Temporal client.Client
	// TaskQueue is where workflows are started (default contract.TaskQueue;
	// tests sharing one dev server give each its own).
	TaskQueue string
	Tokens    *streamtoken.Signer
	Recorder  SegmentRecorder
	// WorkerKey authenticates media workers on /internal/v1.
	WorkerKey string

	PresignExpiry time.Duration // lifetime of presigned URLs
	ClipMaxLength time.Duration // longest clip range accepted
	SegmentLength time.Duration // target segment length (session liveness, timeline joins)
	ClipGrace     time.Duration // how long past its end a clip waits for segments
	TokenExpiry   time.Duration // stream token lifetime

	// AgentOfflineAfter and AgentAckTimeout bound a PTZ command's delivery
	// (zero: control.OfflineAfter and control.AckTimeout).
	AgentOfflineAfter time.Duration
	AgentAckTimeout   time.Duration
	// AgentPingInterval is how often the API pings agents on their control
	// channel (zero: control.PingInterval); an agent silent for three
	// intervals is dropped.
	AgentPingInterval time.Duration
}

// Server serves the REST API.
type Server struct {
	opts    Options
	metrics *metrics
	hub     *agentHub // this replica's agent control connections
	// Work a request starts and does not wait for (telling thousands of
	// supervisors something): Close cancels it and waits.
	bg         context.Context
	stopBG     context.CancelFunc
	background sync.WaitGroup
}

// New builds a server.
func New(o Options) *Server {
	if o.PresignExpiry == 0 {
		o.PresignExpiry = contract.DefaultPresignExpiry
	}
	if o.ClipMaxLength == 0 {
		o.ClipMaxLength = contract.DefaultClipMaxLength
	}
	if o.SegmentLength == 0 {
		o.SegmentLength = recording.DefaultSegmentLength
	}
	if o.TaskQueue == "" {
		o.TaskQueue = contract.TaskQueue
	}
	if o.ClipGrace == 0 {
		o.ClipGrace = contract.DefaultClipGrace
	}
	if o.TokenExpiry == 0 {
		o.TokenExpiry = streamtoken.DefaultExpiry
	}
	if o.AgentOfflineAfter == 0 {
		o.AgentOfflineAfter = control.OfflineAfter
	}
	if o.AgentAckTimeout == 0 {
		o.AgentAckTimeout = control.AckTimeout
	}
	if o.AgentPingInterval == 0 {
		o.AgentPingInterval = control.PingInterval
	}
	var states ChannelStates
	if o.Store != nil {
		states = o.Store
	}
	s := &Server{opts: o, metrics: newMetrics(states)}
	s.bg, s.stopBG = context.WithCancel(context.Background())
	s.hub = newAgentHub(s)
	return s
}

// Close drops the agents' control connections (they reconnect to another
// replica) and waits for their Temporal workers to stop, and for background
// work, which it cancels. Call it once the HTTP server has stopped:
// hijacked WebSocket connections outlive it.
func (s *Server) Close() {
	s.hub.close()
	s.stopBG()
	s.background.Wait()
}

func (s *Server) pingInterval() time.Duration     { return s.opts.AgentPingInterval }
func (s *Server) keepaliveTimeout() time.Duration { return 3 * s.opts.AgentPingInterval }

// Handler returns the HTTP handler with every route.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(s.recoverJSON, s.observe)
	r.NoRoute(func(c *gin.Context) { fail(c, http.StatusNotFound, "not_found", "no such route") })
	r.NoMethod(func(c *gin.Context) { fail(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed") })

	r.GET("/healthz", s.healthz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})))
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openAPISpec) })

	v1 := r.Group("/v1", s.authenticate)
	v1.POST("/cameras", s.createCamera)
	v1.GET("/cameras", s.listCameras)
	v1.GET("/cameras/:id", s.getCamera)
	v1.PATCH("/cameras/:id", s.updateCamera)
	v1.DELETE("/cameras/:id", s.deleteCamera)

	v1.GET("/nvrs", s.requireAdmin, s.listNVRs)
	v1.POST("/nvrs", s.requireAdmin, s.createNVR)
	v1.PATCH("/nvrs/:id", s.requireAdmin, s.updateNVR)

	v1.POST("/channels", s.createChannel)
	v1.GET("/channels", s.listChannels)
	v1.GET("/channels/:id", s.getChannel)
	v1.PATCH("/channels/:id", s.updateChannel)
	v1.DELETE("/channels/:id", s.deleteChannel)
	v1.GET("/channels/:id/recordings", s.listRecordings)
	v1.GET("/channels/:id/timeline", s.timeline)

	wf := v1.Group("", s.requireTemporal)
	wf.POST("/channels/:id/stream-tokens", s.createStreamToken)
	wf.POST("/channels/:id/clips", s.createClip)
	wf.GET("/clips/:id", s.getClip)
	wf.POST("/channels/:id/snapshots", s.createSnapshot)
	wf.POST("/snapshots/:id/complete", s.completeSnapshot)
	wf.GET("/snapshots/:id", s.getSnapshot)
	wf.POST("/cameras/:id/ptz", s.cameraPTZ)

	internal := r.Group("/internal/v1", s.requireTemporal)
	workers := internal.Group("", s.authWorker)
	workers.POST("/nvrs/register", s.registerNVR)
	workers.POST("/sessions/authorize", s.authorizeSession)
	workers.POST("/sessions/:id/started", s.sessionSignal(contract.SignalStarted))
	workers.POST("/sessions/:id/segments", s.sessionSignal(contract.SignalSegment))
	workers.POST("/sessions/:id/stopped", s.sessionSignal(contract.SignalStopped))
	agents := internal.Group("/agent", s.authAgent)
	agents.POST("/resolve", s.resolveStream)
	agents.POST("/stream-tokens", s.agentStreamToken)
	agents.GET("/control", s.agentControl)
	return r
}

// requireTemporal answers 503 when the server runs without a Temporal client.
func (s *Server) requireTemporal(c *gin.Context) {
	if s.opts.Temporal == nil {
		fail(c, http.StatusServiceUnavailable, "workflows_unavailable", "this API runs without Temporal")
		return
	}
	c.Next()
}

func (s *Server) healthz(c *gin.Context) {
	if err := s.opts.Store.DB.PingContext(c.Request.Context()); err != nil {
		fail(c, http.StatusServiceUnavailable, "unhealthy", "database unreachable")
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// recoverJSON turns a panic into a logged 500 with the error model, so a bug
// never leaks a stack trace to a client.
func (s *Server) recoverJSON(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			slog.ErrorContext(c, "panic in handler", "route", c.FullPath(), "panic", p)
			fail(c, http.StatusInternalServerError, "internal", "internal error")
		}
	}()
	c.Next()
}

func (s *Server) logWarn(c *gin.Context, msg string, err error) {
	slog.WarnContext(c, msg, "route", c.FullPath(), "err", err)
}

package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/streamtoken"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

// The /internal/v1 calls: media workers authorize and report stream
// sessions; agents resolve tokens to their own cameras and mint fresh ones.

// --- media workers ---

type authorizeRequest struct {
	Token  string `json:"token"`
	Worker string `json:"worker"`
}

// authorizeSession runs the authorize update on the session's workflow,
// starting it if needed: the workflow makes the token single-use.
func (s *Server) authorizeSession(c *gin.Context) {
	var req authorizeRequest
	if !bindJSON(c, &req) {
		return
	}
	claims, ok := s.verifyToken(c, req.Token)
	if !ok {
		return
	}
	start := s.opts.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       contract.StreamWorkflowID(claims.SessionID),
		TaskQueue:                s.opts.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// A session id is never reused: a finished session's token stays spent.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(contract.ChannelIDKey.ValueSet(claims.ChannelID)),
	}, workflows.StreamSessionWorkflow, contract.StreamInput{
		SessionID: claims.SessionID, ChannelID: claims.ChannelID, Quality: claims.Quality, SegmentLength: s.opts.SegmentLength,
		Record: claims.Record,
	})
	handle, err := s.opts.Temporal.UpdateWithStartWorkflow(c.Request.Context(), client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   contract.UpdateAuthorize,
			Args:         []any{contract.AuthorizeRequest{Worker: req.Worker}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	var grant recording.Grant
	if err == nil {
		err = handle.Get(c.Request.Context(), &grant)
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	var appErr *temporal.ApplicationError
	switch {
	case err == nil:
		c.JSON(http.StatusOK, grant)
	case errors.As(err, &started):
		fail(c, http.StatusConflict, "token_used", "stream token already used")
	case errors.As(err, &appErr):
		// The workflow rejected the update: already used, or channel inactive.
		fail(c, http.StatusConflict, "stream_rejected", "%s", appErr.Message())
	default:
		failErr(c, "stream session", err)
	}
}

// verifyToken checks a stream token's signature and expiry.
func (s *Server) verifyToken(c *gin.Context, token string) (streamtoken.Claims, bool) {
	claims, err := s.opts.Tokens.Verify(token, time.Now())
	switch {
	case errors.Is(err, streamtoken.ErrExpired):
		fail(c, http.StatusUnauthorized, "token_expired", "stream token expired")
	case err != nil:
		fail(c, http.StatusUnauthorized, "token_invalid", "stream token invalid")
	}
	return claims, err == nil
}

// sessionSignal signals the session's workflow from a media worker report.
func (s *Server) sessionSignal(name string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := pathID(c)
		if !ok {
			return
		}
		var arg any
		var seg recording.SegmentReport
		if name == contract.SignalSegment {
			if !bindJSON(c, &seg) {
				return
			}
			if seg.Key == "" || seg.Start.IsZero() || !seg.Start.Before(seg.End) || seg.Size < 0 {
				invalid(c, "segment needs key, start < end and size")
				return
			}
			arg = seg
		}
		err := s.opts.Temporal.SignalWorkflow(c.Request.Context(), contract.StreamWorkflowID(id.String()), "", name, arg)
		if isNotFound(err) && name == contract.SignalSegment && s.opts.Recorder != nil {
			// The session already ended (lost, or stopped before its spool
			// drained): record the segment all the same; footage is never dropped.
			sess, serr := s.opts.Store.SessionByID(c.Request.Context(), id)
			if serr != nil {
				failErr(c, "session", serr)
				return
			}
			err = s.opts.Recorder.RecordLateSegment(c.Request.Context(), id.String(), sess.ChannelID.String(), seg)
		}
		if isNotFound(err) {
			fail(c, http.StatusNotFound, "not_found", "session not found or ended")
			return
		}
		if err != nil {
			failErr(c, "session", err)
			return
		}
		c.Status(http.StatusAccepted)
	}
}

// --- agents ---

type resolveRequest struct {
	Token string `json:"token"`
}

// resolveView tells an agent what to pull for a token: only a camera of
// its own, so an agent can never be steered at arbitrary LAN hosts.
type resolveView struct {
	SessionID string `json:"session_id"`
	ChannelID string `json:"channel_id"`
	Quality   string `json:"quality"`
	WorkerURL string `json:"worker_url"`
	Protocol  string `json:"protocol"`
	CameraURL string `json:"camera_url"` // with credentials: for the agent only
}

func (s *Server) resolveStream(c *gin.Context) {
	var req resolveRequest
	if !bindJSON(c, &req) {
		return
	}
	claims, ok := s.verifyToken(c, req.Token)
	if !ok {
		return
	}
	ag := c.MustGet(agentKey).(*store.Agent)
	chID, _ := uuid.Parse(claims.ChannelID)
	ch, err := s.opts.Store.GetChannel(c.Request.Context(), ag.AccountID, chID)
	if err != nil {
		failErr(c, "channel", err)
		return
	}
	cam, err := s.opts.Store.GetCamera(c.Request.Context(), ag.AccountID, ch.CameraID)
	if err != nil {
		failErr(c, "camera", err)
		return
	}
	if cam.AgentID == nil || *cam.AgentID != ag.ID {
		fail(c, http.StatusForbidden, "not_your_camera", "the camera is not assigned to this agent")
		return
	}
	c.JSON(http.StatusOK, resolveView{SessionID: claims.SessionID, ChannelID: claims.ChannelID, Quality: claims.Quality,
		WorkerURL: claims.WorkerURL, Protocol: cam.Protocol, CameraURL: cameraURL(cam, streamPath(cam, claims.Quality))})
}

// agentTokenRequest asks for a fresh token of one of the agent's channels;
// record for the channel's continuous recording (a record stream resuming).
type agentTokenRequest struct {
	tokenRequest
	Record bool `json:"record"`
}

// agentStreamToken mints a fresh token for one of the agent's channels: what
// an agent does to reconnect after its media worker restarted.
func (s *Server) agentStreamToken(c *gin.Context) {
	var req agentTokenRequest
	if !bindJSON(c, &req) {
		return
	}
	ag := c.MustGet(agentKey).(*store.Agent)
	chID, err := uuid.Parse(req.ChannelID)
	if err != nil {
		invalid(c, "channel_id must be a UUID")
		return
	}
	ch, err := s.opts.Store.GetChannel(c.Request.Context(), ag.AccountID, chID)
	if err != nil {
		failErr(c, "channel", err)
		return
	}
	if req.Record {
		// A recording agent reconnecting may have lost its media worker:
		// once that worker has been silent past recording.NVRStaleAfter (or
		// its NVR is draining), the channel moves and the agent's next token
		// names a healthy worker, so recording resumes without waiting for
		// the supervisor.
		if ch, err = s.placeRecording(c.Request.Context(), ch); err != nil {
			failErr(c, "channel", err)
			return
		}
	}
	s.mintToken(c, ch, req.Quality, req.Record)
}

// placeRecording moves a recording channel off a dead or draining NVR, if it
// is on one and another has room, and returns the channel as it now is.
func (s *Server) placeRecording(ctx context.Context, ch *store.Channel) (*store.Channel, error) {
	moved, _, err := s.opts.Store.MoveChannel(ctx, ch.ID, time.Now().Add(-recording.NVRStaleAfter))
	switch {
	case errors.Is(err, store.ErrNoCapacity):
		return ch, nil
	case err != nil:
		return nil, err
	case !moved:
		return ch, nil
	}
	slog.InfoContext(ctx, "recording channel moved off an unhealthy NVR", "channel", ch.ID)
	return s.opts.Store.GetChannel(ctx, ch.AccountID, ch.ID)
}

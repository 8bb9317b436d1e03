package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

type ptzRequest struct {
	Action string   `json:"action"`
	Preset *int     `json:"preset"`
	Speed  *float64 `json:"speed"`
}

type ptzView struct {
	CommandID string  `json:"command_id"`
	CameraID  string  `json:"camera_id"`
	Action    string  `json:"action"`
	Preset    int     `json:"preset,omitempty"`
	Speed     float64 `json:"speed,omitempty"`
}

// cameraPTZ sends a PTZ command to the camera's agent and answers 202 once
// the agent has acknowledged that the camera took it.
func (s *Server) cameraPTZ(c *gin.Context) {
	cam, ok := s.camera(c)
	if !ok {
		return
	}
	var req ptzRequest
	if !bindJSON(c, &req) {
		return
	}
	preset, speed := 0, control.DefaultSpeed
	if req.Preset != nil {
		if preset = *req.Preset; preset < 1 {
			invalid(c, "preset must be an integer of at least 1")
			return
		}
	}
	if req.Speed != nil {
		if speed = *req.Speed; speed <= 0 || speed > 1 {
			invalid(c, "speed must be greater than 0 and at most 1")
			return
		}
	}
	if err := control.ValidatePTZ(req.Action, preset, speed); err != nil {
		invalid(c, "%s", err.Error())
		return
	}
	if !cam.PTZ {
		fail(c, http.StatusBadRequest, "ptz_unsupported", "the camera has no PTZ capability (set \"ptz\": true if it has)")
		return
	}
	if cam.AgentID == nil {
		fail(c, http.StatusBadRequest, "no_agent", "the camera has no agent to drive it")
		return
	}
	cmd := control.Command{V: control.Version, ID: uuid.NewString(), Type: control.TypePTZ, CameraID: cam.ID.String(),
		Action: req.Action, Preset: preset, Speed: speed}
	if req.Action == control.ActionStop || req.Action == control.ActionHome || req.Action == control.ActionPreset {
		cmd.Speed = 0 // only moves have a speed
	}
	// The workflow ends within the delivery timeouts; the extra bound only
	// guards against a workflow that never starts (no workflow worker).
	// The request's context, not the pooled gin.Context: the Temporal client
	// watches it from goroutines of its own.
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.AgentOfflineAfter+s.opts.AgentAckTimeout+10*time.Second)
	defer cancel()
	var ack control.Ack
	run, err := s.opts.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: contract.AgentCommandWorkflowID(cmd.ID), TaskQueue: s.opts.TaskQueue,
	}, workflows.AgentCommandWorkflow, contract.AgentCommandInput{
		AgentID: cam.AgentID.String(), Command: cmd, OfflineAfter: s.opts.AgentOfflineAfter, AckTimeout: s.opts.AgentAckTimeout,
	})
	if err == nil {
		err = run.Get(ctx, &ack)
	}
	if err != nil {
		s.failDelivery(c, err)
		return
	}
	if !ack.OK {
		fail(c, http.StatusBadGateway, "ptz_failed", "the agent could not drive the camera: %s", ack.Error)
		return
	}
	c.JSON(http.StatusAccepted, ptzView{CommandID: cmd.ID, CameraID: cmd.CameraID, Action: cmd.Action, Preset: cmd.Preset, Speed: cmd.Speed})
}

// failDelivery answers for a command that did not reach its agent, or got
// no answer from it.
func (s *Server) failDelivery(c *gin.Context, err error) {
	var appErr *temporal.ApplicationError
	errors.As(err, &appErr)
	switch {
	case appErr != nil && appErr.Type() == control.ErrOffline:
		fail(c, http.StatusConflict, "agent_offline", "the camera's agent is not connected: %s", appErr.Message())
	case appErr != nil && appErr.Type() == control.ErrTimeout:
		fail(c, http.StatusGatewayTimeout, "agent_timeout", "the camera's agent did not answer: %s", appErr.Message())
	case errors.Is(err, context.DeadlineExceeded):
		fail(c, http.StatusGatewayTimeout, "agent_timeout", "no answer from the camera's agent in time")
	default:
		failErr(c, "agent command", err)
	}
}

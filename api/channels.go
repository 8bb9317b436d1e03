package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.temporal.io/sdk/client"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

const (
	defaultRetention = 30
	maxRetention     = 3650
)

type channelRequest struct {
	CameraID      *string `json:"camera_id"`
	NVRID         *string `json:"nvr_id"`
	RetentionDays *int    `json:"retention_days"`
}

type channelView struct {
	ID            uuid.UUID `json:"id"`
	CameraID      uuid.UUID `json:"camera_id"`
	NVRID         uuid.UUID `json:"nvr_id"`
	Status        string    `json:"status"`
	RetentionDays int       `json:"retention_days"`
	CreatedAt     time.Time `json:"created_at"`
}

func viewChannel(ch *store.Channel) channelView {
	return channelView{ID: ch.ID, CameraID: ch.CameraID, NVRID: ch.NVRID, Status: ch.Status,
		RetentionDays: ch.RetentionDays, CreatedAt: ch.CreatedAt}
}

func (s *Server) createChannel(c *gin.Context) {
	var req channelRequest
	if !bindJSON(c, &req) {
		return
	}
	if req.CameraID == nil {
		invalid(c, "camera_id is required")
		return
	}
	camID, err := uuid.Parse(*req.CameraID)
	if err != nil {
		invalid(c, "camera_id must be a UUID")
		return
	}
	ch := &store.Channel{AccountID: account(c).ID, CameraID: camID, RetentionDays: defaultRetention}
	if req.RetentionDays != nil {
		if *req.RetentionDays < 1 || *req.RetentionDays > maxRetention {
			invalid(c, "retention_days must be from 1 to %d", maxRetention)
			return
		}
		ch.RetentionDays = *req.RetentionDays
	}
	if req.NVRID != nil {
		if ch.NVRID, err = uuid.Parse(*req.NVRID); err != nil || ch.NVRID == uuid.Nil {
			invalid(c, "nvr_id must be the UUID of an NVR instance")
			return
		}
	}
	if _, err := s.opts.Store.GetCamera(c.Request.Context(), ch.AccountID, camID); err != nil {
		failErr(c, "camera", err)
		return
	}
	err = s.opts.Store.CreateChannel(c.Request.Context(), ch)
	if errors.Is(err, store.ErrNotFound) {
		invalid(c, "nvr_id names no NVR instance")
		return
	}
	if err != nil {
		failErr(c, "channel", err)
		return
	}
	c.JSON(http.StatusCreated, viewChannel(ch))
}

// channel reads the :id channel of the caller's account, or answers.
func (s *Server) channel(c *gin.Context) (*store.Channel, bool) {
	id, ok := pathID(c)
	if !ok {
		return nil, false
	}
	ch, err := s.opts.Store.GetChannel(c.Request.Context(), account(c).ID, id)
	if err != nil {
		failErr(c, "channel", err)
		return nil, false
	}
	return ch, true
}

func (s *Server) getChannel(c *gin.Context) {
	if ch, ok := s.channel(c); ok {
		c.JSON(http.StatusOK, viewChannel(ch))
	}
}

func (s *Server) listChannels(c *gin.Context) {
	page, ok := pageParams(c)
	if !ok {
		return
	}
	chs, next, err := s.opts.Store.ListChannels(c.Request.Context(), account(c).ID, page)
	if err != nil {
		failErr(c, "channels", err)
		return
	}
	items := make([]channelView, len(chs))
	for i := range chs {
		items[i] = viewChannel(&chs[i])
	}
	c.JSON(http.StatusOK, listBody[channelView]{Items: items, NextCursor: next})
}

func (s *Server) deleteChannel(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	if err := s.opts.Store.DeleteChannel(c.Request.Context(), account(c).ID, id); err != nil {
		failErr(c, "channel", err)
		return
	}
	// The rows went with the channel; its objects go in the background.
	if s.opts.Temporal != nil {
		_, err := s.opts.Temporal.ExecuteWorkflow(c.Request.Context(), client.StartWorkflowOptions{
			ID: contract.PurgeChannelWorkflowID(id.String()), TaskQueue: s.opts.TaskQueue,
		}, workflows.PurgeChannelWorkflow, id.String())
		if err != nil {
			s.logWarn(c, "could not start purging the deleted channel's objects", err)
		}
	}
	c.Status(http.StatusNoContent)
}

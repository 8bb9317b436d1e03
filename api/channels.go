package api

import (
	"errors"
	"net/http"
	"slices"
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
	Recording     *string `json:"recording"`
	RecordQuality *string `json:"record_quality"`
}

// channelPatch is what a channel's owner may change.
type channelPatch struct {
	RetentionDays *int    `json:"retention_days"`
	Recording     *string `json:"recording"`
	RecordQuality *string `json:"record_quality"`
}

type channelView struct {
	ID            uuid.UUID    `json:"id"`
	CameraID      uuid.UUID    `json:"camera_id"`
	NVRID         uuid.UUID    `json:"nvr_id"`
	Status        string       `json:"status"`
	RetentionDays int          `json:"retention_days"`
	Recording     string       `json:"recording"`
	RecordQuality string       `json:"record_quality"`
	State         channelState `json:"state"`
	CreatedAt     time.Time    `json:"created_at"`
}

// channelState is what the channel's supervisor last reported.
type channelState struct {
	Status         string     `json:"status"`
	Since          *time.Time `json:"since"`
	LastSegmentEnd *time.Time `json:"last_segment_end"`
	LastError      string     `json:"last_error"`
}

func viewChannel(ch *store.Channel) channelView {
	state := channelState{Status: ch.StateStatus, Since: ch.StateSince, LastSegmentEnd: ch.LastSegmentEnd, LastError: ch.StateError}
	if ch.Recording == contract.RecordingOff {
		// Switched off: say so at once, whatever the supervisor last said.
		state.Status, state.LastError = contract.StateOff, ""
	}
	return channelView{ID: ch.ID, CameraID: ch.CameraID, NVRID: ch.NVRID, Status: ch.Status,
		RetentionDays: ch.RetentionDays, Recording: ch.Recording, RecordQuality: ch.RecordQuality,
		State: state, CreatedAt: ch.CreatedAt}
}

// apply checks and sets the settings a request gives: retention, recording
// mode and record quality. A channel that records needs a camera stream of
// its quality. Creating, the quality defaults to the best stream the camera
// has, and a camera with none to record (MJPEG only) to recording off. It
// answers false after answering the request.
func (r channelPatch) apply(c *gin.Context, ch *store.Channel, cam *store.Camera, creating bool) bool {
	if r.RetentionDays != nil {
		if *r.RetentionDays < 1 || *r.RetentionDays > maxRetention {
			invalid(c, "retention_days must be from 1 to %d", maxRetention)
			return false
		}
		ch.RetentionDays = *r.RetentionDays
	}
	if r.Recording != nil {
		if *r.Recording != contract.RecordingContinuous && *r.Recording != contract.RecordingOff {
			invalid(c, "recording must be %q or %q", contract.RecordingContinuous, contract.RecordingOff)
			return false
		}
		ch.Recording = *r.Recording
	}
	switch {
	case r.RecordQuality != nil:
		if !slices.Contains(contract.RecordQualities, *r.RecordQuality) {
			invalid(c, "record_quality must be one of %q", contract.RecordQualities)
			return false
		}
		ch.RecordQuality = *r.RecordQuality
	case creating:
		i := slices.IndexFunc(contract.RecordQualities, func(q string) bool { return streamPath(cam, q) != "" })
		if i >= 0 {
			ch.RecordQuality = contract.RecordQualities[i]
		} else if r.Recording == nil {
			ch.Recording = contract.RecordingOff
		}
	}
	changed := creating || r.Recording != nil || r.RecordQuality != nil
	if changed && ch.Recording == contract.RecordingContinuous && streamPath(cam, ch.RecordQuality) == "" {
		invalid(c, "the camera has no %s stream to record", ch.RecordQuality)
		return false
	}
	return true
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
	ch := &store.Channel{AccountID: account(c).ID, CameraID: camID, RetentionDays: defaultRetention,
		Recording: contract.RecordingContinuous, RecordQuality: contract.RecordQualities[0]}
	if req.NVRID != nil {
		if ch.NVRID, err = uuid.Parse(*req.NVRID); err != nil || ch.NVRID == uuid.Nil {
			invalid(c, "nvr_id must be the UUID of an NVR instance")
			return
		}
	}
	cam, err := s.opts.Store.GetCamera(c.Request.Context(), ch.AccountID, camID)
	if err != nil {
		failErr(c, "camera", err)
		return
	}
	settings := channelPatch{RetentionDays: req.RetentionDays, Recording: req.Recording, RecordQuality: req.RecordQuality}
	if !settings.apply(c, ch, cam, true) {
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
	if s.opts.Temporal != nil {
		// The channel exists either way: the workflow worker starts any
		// missing supervisor when it starts.
		if err := workflows.StartChannelSupervisor(c.Request.Context(), s.opts.Temporal, s.opts.TaskQueue, ch.ID.String()); err != nil {
			s.logWarn(c, "could not start the new channel's supervisor", err)
		}
	}
	c.JSON(http.StatusCreated, viewChannel(ch))
}

func (s *Server) updateChannel(c *gin.Context) {
	ch, ok := s.channel(c)
	if !ok {
		return
	}
	var req channelPatch
	if !bindJSON(c, &req) {
		return
	}
	cam, err := s.opts.Store.GetCamera(c.Request.Context(), ch.AccountID, ch.CameraID)
	if err != nil {
		failErr(c, "camera", err)
		return
	}
	before := *ch
	if !req.apply(c, ch, cam, false) {
		return
	}
	if err := s.opts.Store.UpdateChannel(c.Request.Context(), ch); err != nil {
		failErr(c, "channel", err)
		return
	}
	if ch.Recording != before.Recording || ch.RecordQuality != before.RecordQuality {
		s.signalChannelChanged(c, ch.ID)
	}
	c.JSON(http.StatusOK, viewChannel(ch))
}

// signalChannelChanged tells the channel's supervisor to re-read it (a
// channel without a running supervisor is no error).
func (s *Server) signalChannelChanged(c *gin.Context, id uuid.UUID) {
	if s.opts.Temporal == nil {
		return
	}
	if err := workflows.SignalChannel(c.Request.Context(), s.opts.Temporal, id.String(), contract.SignalChannelChanged, nil); err != nil {
		s.logWarn(c, "could not tell the channel's supervisor about a change", err)
	}
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
	s.signalChannelChanged(c, id)
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

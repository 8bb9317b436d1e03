package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

type clipRequest struct {
	Start *time.Time `json:"start"`
	End   *time.Time `json:"end"`
}

type clipSegmentView struct {
	ID    uuid.UUID `json:"id"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	URL   string    `json:"url"`
}

type clipView struct {
	ID        uuid.UUID         `json:"id"`
	ChannelID uuid.UUID         `json:"channel_id"`
	Start     time.Time         `json:"start"`
	End       time.Time         `json:"end"`
	Status    string            `json:"status"`
	Progress  float64           `json:"progress"`
	Segments  []clipSegmentView `json:"segments"`
	URL       string            `json:"url,omitempty"`
	Error     string            `json:"error,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

func (s *Server) createClip(c *gin.Context) {
	ch, ok := s.channel(c)
	if !ok {
		return
	}
	var req clipRequest
	if !bindJSON(c, &req) {
		return
	}
	switch {
	case req.Start == nil || req.End == nil:
		invalid(c, "start and end are required (RFC 3339)")
		return
	case !req.Start.Before(*req.End):
		fail(c, http.StatusBadRequest, "invalid_range", "start must be before end")
		return
	case req.End.Sub(*req.Start) > s.opts.ClipMaxLength:
		fail(c, http.StatusBadRequest, "invalid_range", "a clip may be at most %s long", s.opts.ClipMaxLength)
		return
	case req.End.After(time.Now().Add(s.opts.ClipMaxLength)):
		fail(c, http.StatusBadRequest, "invalid_range", "a clip may end at most %s from now", s.opts.ClipMaxLength)
		return
	}
	clip := &store.Clip{AccountID: ch.AccountID, ChannelID: ch.ID, Start: *req.Start, End: *req.End}
	if err := s.opts.Store.CreateClip(c.Request.Context(), clip); err != nil {
		failErr(c, "clip", err)
		return
	}
	_, err := s.opts.Temporal.ExecuteWorkflow(c.Request.Context(), client.StartWorkflowOptions{
		ID:        contract.ClipWorkflowID(clip.ID.String()),
		TaskQueue: s.opts.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.ChannelIDKey.ValueSet(ch.ID.String()),
			contract.ClipStatusKey.ValueSet(contract.ClipInProgress),
		),
	}, workflows.ClipWorkflow, contract.ClipInput{
		ClipID: clip.ID.String(), ChannelID: ch.ID.String(),
		Start: clip.Start, End: clip.End, Grace: s.opts.ClipGrace,
	})
	if err != nil {
		// The row is useless without its workflow: mark it so the client
		// sees why, rather than a clip in progress forever.
		_ = s.opts.Store.UpdateClip(c.Request.Context(), clip.ID, store.ClipUpdate{Status: contract.ClipFailed, Error: "could not start the clip job"})
		failErr(c, "clip workflow", err)
		return
	}
	c.JSON(http.StatusAccepted, clipView{ID: clip.ID, ChannelID: clip.ChannelID, Start: clip.Start, End: clip.End,
		Status: clip.Status, Segments: []clipSegmentView{}, CreatedAt: clip.CreatedAt, UpdatedAt: clip.UpdatedAt})
}

func (s *Server) getClip(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	clip, err := s.opts.Store.GetClip(c.Request.Context(), account(c).ID, id)
	if err != nil {
		failErr(c, "clip", err)
		return
	}
	view := clipView{ID: clip.ID, ChannelID: clip.ChannelID, Start: clip.Start, End: clip.End, Status: clip.Status,
		Progress: clip.Progress, Error: clip.Error, CreatedAt: clip.CreatedAt, UpdatedAt: clip.UpdatedAt}
	if clip.Status == contract.ClipInProgress {
		// The workflow knows the progress before the row does.
		if v, err := s.opts.Temporal.QueryWorkflow(c.Request.Context(), contract.ClipWorkflowID(clip.ID.String()), "", contract.QueryProgress); err == nil {
			var p contract.ClipProgress
			if v.Get(&p) == nil && p.RequestedSeconds > 0 {
				view.Progress = p.CoveredSeconds / p.RequestedSeconds
			}
		} else if !isNotFound(err) {
			s.logWarn(c, "clip progress query failed", err)
		}
	}
	recs, err := s.opts.Store.ClipRecordings(c.Request.Context(), clip.ID)
	if err != nil {
		failErr(c, "clip segments", err)
		return
	}
	view.Segments = make([]clipSegmentView, len(recs))
	for i, r := range recs {
		u, err := s.opts.Objects.PresignGet(c.Request.Context(), r.Key, s.opts.PresignExpiry)
		if err != nil {
			failErr(c, "segment URL", err)
			return
		}
		view.Segments[i] = clipSegmentView{ID: r.ID, Start: r.Start, End: r.End, URL: u}
	}
	if clip.Status == contract.ClipFinished && clip.ObjectKey != "" {
		if view.URL, err = s.opts.Objects.PresignGet(c.Request.Context(), clip.ObjectKey, s.opts.PresignExpiry); err != nil {
			failErr(c, "clip URL", err)
			return
		}
	}
	c.JSON(http.StatusOK, view)
}

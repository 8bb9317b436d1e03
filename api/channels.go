package api

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
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
	// defaultRange is the recordings window when from/to are not given.
	defaultRange = 24 * time.Hour
)

// listBody is every list response: {"items":[…],"next_cursor":"…"}.
type listBody[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// pageParams reads limit and cursor.
func pageParams(c *gin.Context) (store.Page, bool) {
	p := store.Page{Limit: store.DefaultPageLimit, Cursor: c.Query("cursor")}
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxPageLimit {
			fail(c, http.StatusBadRequest, "invalid_limit", "limit must be an integer from 1 to %d", store.MaxPageLimit)
			return p, false
		}
		p.Limit = n
	}
	return p, true
}

// timeRange reads from and to (RFC 3339); to defaults to now, from to
// defaultRange before to.
func timeRange(c *gin.Context) (from, to time.Time, ok bool) {
	to = time.Now().UTC()
	parse := func(name string, dst *time.Time) bool {
		v, present := c.GetQuery(name)
		if !present {
			return true
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			fail(c, http.StatusBadRequest, "invalid_time", "%s must be an RFC 3339 time like 2026-01-02T15:04:05Z", name)
			return false
		}
		*dst = t.UTC()
		return true
	}
	if !parse("to", &to) {
		return from, to, false
	}
	from = to.Add(-defaultRange)
	if !parse("from", &from) {
		return from, to, false
	}
	if !from.Before(to) {
		fail(c, http.StatusBadRequest, "invalid_range", "from must be before to")
		return from, to, false
	}
	return from, to, true
}

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

type recordingView struct {
	ID         uuid.UUID `json:"id"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	DurationMS int64     `json:"duration_ms"`
	Size       int64     `json:"size"`
	Codec      string    `json:"codec"`
	URL        string    `json:"url"`
}

func (s *Server) listRecordings(c *gin.Context) {
	ch, ok := s.channel(c)
	if !ok {
		return
	}
	from, to, ok := timeRange(c)
	if !ok {
		return
	}
	page, ok := pageParams(c)
	if !ok {
		return
	}
	recs, next, err := s.opts.Store.ListRecordings(c.Request.Context(), ch.ID, from, to, page)
	if err != nil {
		failErr(c, "recordings", err)
		return
	}
	items := make([]recordingView, len(recs))
	for i, r := range recs {
		u, err := s.opts.Objects.PresignGet(c.Request.Context(), r.Key, s.opts.PresignExpiry)
		if err != nil {
			failErr(c, "recording URL", err)
			return
		}
		items[i] = recordingView{ID: r.ID, Start: r.Start, End: r.End, DurationMS: r.DurationMS, Size: r.Size, Codec: r.Codec, URL: u}
	}
	c.JSON(http.StatusOK, listBody[recordingView]{Items: items, NextCursor: next})
}

func (s *Server) timeline(c *gin.Context) {
	ch, ok := s.channel(c)
	if !ok {
		return
	}
	from, to, ok := timeRange(c)
	if !ok {
		return
	}
	spans, gaps, err := s.opts.Store.Timeline(c.Request.Context(), ch.ID, from, to, s.opts.SegmentLength/10)
	if err != nil {
		failErr(c, "timeline", err)
		return
	}
	if spans == nil {
		spans = []store.Span{}
	}
	if gaps == nil {
		gaps = []store.Span{}
	}
	c.JSON(http.StatusOK, gin.H{"from": from, "to": to, "spans": spans, "gaps": gaps})
}

type nvrRequest struct {
	Name     string `json:"name"`
	MediaURL string `json:"media_url"`
	Capacity *int   `json:"capacity"`
}

func (s *Server) createNVR(c *gin.Context) {
	var req nvrRequest
	if !bindJSON(c, &req) {
		return
	}
	if req.Name == "" || len(req.Name) > 200 {
		invalid(c, "name must be 1 to 200 characters")
		return
	}
	if u, err := url.Parse(req.MediaURL); err != nil || u.Host == "" || (u.Scheme != "ws" && u.Scheme != "wss") {
		invalid(c, "media_url must be an absolute ws:// or wss:// URL")
		return
	}
	n := &store.NVR{Name: req.Name, MediaURL: req.MediaURL, Capacity: 1000}
	if req.Capacity != nil {
		if *req.Capacity < 1 || *req.Capacity > 100000 {
			invalid(c, "capacity must be from 1 to 100000")
			return
		}
		n.Capacity = *req.Capacity
	}
	if err := s.opts.Store.UpsertNVR(c.Request.Context(), n); err != nil {
		failErr(c, "nvr", err)
		return
	}
	c.JSON(http.StatusCreated, n)
}

func (s *Server) listNVRs(c *gin.Context) {
	nvrs, err := s.opts.Store.ListNVRs(c.Request.Context())
	if err != nil {
		failErr(c, "nvrs", err)
		return
	}
	if nvrs == nil {
		nvrs = []store.NVR{}
	}
	c.JSON(http.StatusOK, listBody[store.NVR]{Items: nvrs})
}

package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/streamtoken"
)

// Qualities a stream token may ask for.
var qualities = map[string]func(*store.Camera) string{
	"high":  func(c *store.Camera) string { return c.StreamHigh },
	"mid":   func(c *store.Camera) string { return c.StreamMid },
	"low":   func(c *store.Camera) string { return c.StreamLow },
	"mjpeg": func(c *store.Camera) string { return c.StreamMJPEG },
}

type tokenRequest struct {
	Quality   string `json:"quality"`
	ChannelID string `json:"channel_id"` // agent calls only
}

type tokenView struct {
	Token     string    `json:"token"`
	SessionID string    `json:"session_id"`
	ChannelID string    `json:"channel_id"`
	Quality   string    `json:"quality"`
	WorkerURL string    `json:"worker_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// mintToken signs a token for a new session of ch.
func (s *Server) mintToken(c *gin.Context, ch *store.Channel, quality string) {
	path, ok := qualities[quality]
	if !ok {
		invalid(c, `quality must be one of "high", "mid", "low", "mjpeg"`)
		return
	}
	if ch.Status != store.ChannelActive {
		fail(c, http.StatusConflict, "channel_inactive", "channel is %s", ch.Status)
		return
	}
	cam, err := s.opts.Store.GetCamera(c.Request.Context(), ch.AccountID, ch.CameraID)
	if err != nil {
		failErr(c, "camera", err)
		return
	}
	if path(cam) == "" {
		invalid(c, "the camera has no %s stream", quality)
		return
	}
	nvr, err := s.opts.Store.GetNVR(c.Request.Context(), ch.NVRID)
	if err != nil {
		failErr(c, "nvr", err)
		return
	}
	claims := streamtoken.Claims{
		SessionID: uuid.Must(uuid.NewV7()).String(), ChannelID: ch.ID.String(), AccountID: ch.AccountID.String(),
		Quality: quality, WorkerURL: nvr.MediaURL, ExpiresAt: time.Now().Add(s.opts.TokenExpiry).UTC(),
	}
	c.JSON(http.StatusCreated, tokenView{Token: s.opts.Tokens.Sign(claims), SessionID: claims.SessionID,
		ChannelID: claims.ChannelID, Quality: quality, WorkerURL: claims.WorkerURL, ExpiresAt: claims.ExpiresAt})
}

func (s *Server) createStreamToken(c *gin.Context) {
	ch, ok := s.channel(c)
	if !ok {
		return
	}
	var req tokenRequest
	if !bindJSON(c, &req) {
		return
	}
	if req.ChannelID != "" {
		invalid(c, "channel_id is taken from the path")
		return
	}
	s.mintToken(c, ch, req.Quality)
}

package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/streamtoken"
)

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

// sessionError is why no session of a channel can be started, with the
// answer an HTTP caller gets.
type sessionError struct {
	status        int
	code, message string
}

func (e *sessionError) Error() string { return e.message }

// newSession signs a token for a new session of ch at quality, with a new
// session id and the worker URL of the channel's NVR; record marks the
// channel's continuous recording. A *sessionError says why it cannot.
func (s *Server) newSession(ctx context.Context, ch *store.Channel, quality string, record bool) (streamtoken.Claims, string, error) {
	if _, ok := (&store.Camera{}).StreamPath(quality); !ok {
		return streamtoken.Claims{}, "", &sessionError{http.StatusBadRequest, "invalid_request", `quality must be one of "high", "mid", "low", "mjpeg"`}
	}
	if ch.Status != store.ChannelActive {
		return streamtoken.Claims{}, "", &sessionError{http.StatusConflict, "channel_inactive", "channel is " + ch.Status}
	}
	cam, err := s.opts.Store.GetCamera(ctx, ch.AccountID, ch.CameraID)
	if errors.Is(err, store.ErrNotFound) {
		return streamtoken.Claims{}, "", &sessionError{http.StatusNotFound, "not_found", "camera not found"}
	}
	if err != nil {
		return streamtoken.Claims{}, "", fmt.Errorf("read camera: %w", err)
	}
	if path, _ := cam.StreamPath(quality); path == "" {
		return streamtoken.Claims{}, "", &sessionError{http.StatusBadRequest, "invalid_request", fmt.Sprintf("the camera has no %s stream", quality)}
	}
	nvr, err := s.opts.Store.GetNVR(ctx, ch.NVRID)
	if errors.Is(err, store.ErrNotFound) {
		return streamtoken.Claims{}, "", &sessionError{http.StatusNotFound, "not_found", "nvr not found"}
	}
	if err != nil {
		return streamtoken.Claims{}, "", fmt.Errorf("read nvr: %w", err)
	}
	claims := streamtoken.Claims{
		SessionID: uuid.Must(uuid.NewV7()).String(), ChannelID: ch.ID.String(), AccountID: ch.AccountID.String(),
		Quality: quality, WorkerURL: nvr.MediaURL, ExpiresAt: time.Now().Add(s.opts.TokenExpiry).UTC(), Record: record,
	}
	return claims, s.opts.Tokens.Sign(claims), nil
}

// mintToken answers with a token for a new session of ch.
func (s *Server) mintToken(c *gin.Context, ch *store.Channel, quality string, record bool) {
	claims, token, err := s.newSession(c.Request.Context(), ch, quality, record)
	if se, ok := errors.AsType[*sessionError](err); ok {
		fail(c, se.status, se.code, "%s", se.message)
		return
	}
	if err != nil {
		failErr(c, "stream token", err)
		return
	}
	c.JSON(http.StatusCreated, tokenView{Token: token, SessionID: claims.SessionID,
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
	s.mintToken(c, ch, req.Quality, false)
}

package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

type nvrRequest struct {
	Name     string `json:"name"`
	MediaURL string `json:"media_url"`
	Capacity *int   `json:"capacity"`
}

func (s *Server) createNVR(c *gin.Context) {
	if n, ok := s.upsertNVR(c); ok {
		c.JSON(http.StatusCreated, n)
	}
}

// upsertNVR registers the NVR the request describes, or answers.
func (s *Server) upsertNVR(c *gin.Context) (*store.NVR, bool) {
	var req nvrRequest
	if !bindJSON(c, &req) {
		return nil, false
	}
	if req.Name == "" || len(req.Name) > 200 {
		invalid(c, "name must be 1 to 200 characters")
		return nil, false
	}
	if u, err := url.Parse(req.MediaURL); err != nil || u.Host == "" || (u.Scheme != "ws" && u.Scheme != "wss") {
		invalid(c, "media_url must be an absolute ws:// or wss:// URL")
		return nil, false
	}
	n := &store.NVR{Name: req.Name, MediaURL: req.MediaURL, Capacity: 1000}
	if req.Capacity != nil {
		if *req.Capacity < 1 || *req.Capacity > 100000 {
			invalid(c, "capacity must be from 1 to 100000")
			return nil, false
		}
		n.Capacity = *req.Capacity
	}
	if err := s.opts.Store.UpsertNVR(c.Request.Context(), n); err != nil {
		failErr(c, "nvr", err)
		return nil, false
	}
	return n, true
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

type nvrPatch struct {
	Status string `json:"status"`
}

// updateNVR drains an NVR (its channels' supervisors move them to other
// NVRs) or makes it active again.
func (s *Server) updateNVR(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	var req nvrPatch
	if !bindJSON(c, &req) {
		return
	}
	if req.Status != store.NVRActive && req.Status != store.NVRDraining {
		invalid(c, "status must be %q or %q", store.NVRActive, store.NVRDraining)
		return
	}
	n, err := s.opts.Store.SetNVRStatus(c.Request.Context(), id, req.Status)
	if err != nil {
		failErr(c, "nvr", err)
		return
	}
	if req.Status == store.NVRDraining && s.opts.Temporal != nil {
		s.drain(n.ID)
	}
	c.JSON(http.StatusOK, n)
}

// drain tells the supervisors of a drained NVR's channels, in the
// background (there may be thousands), so each moves its channel to a
// healthy NVR and restarts its stream there.
func (s *Server) drain(nvrID uuid.UUID) {
	s.background.Go(func() {
		ctx, cancel := context.WithTimeout(s.bg, 5*time.Minute)
		defer cancel()
		ids, err := s.opts.Store.ChannelIDsOnNVR(ctx, nvrID)
		if err == nil {
			err = workflows.SignalChannels(ctx, s.opts.Temporal, ids, contract.SignalChannelChanged)
		}
		if err != nil {
			slog.Warn("drain: telling channel supervisors", "nvr", nvrID, "err", err)
		}
	})
}

// registerNVR is a media worker registering itself (internal API): on
// start, then every recording.NVRHeartbeat, so the NVR's last_seen_at
// tells whether its worker is alive. It is the same upsert an admin's
// createNVR runs, stamped.
func (s *Server) registerNVR(c *gin.Context) {
	n, ok := s.upsertNVR(c)
	if !ok {
		return
	}
	at, err := s.opts.Store.TouchNVR(c.Request.Context(), n.ID)
	if err != nil {
		failErr(c, "nvr", err)
		return
	}
	n.LastSeenAt = &at
	c.JSON(http.StatusCreated, n)
}

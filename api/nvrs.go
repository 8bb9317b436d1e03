package api

import (
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/opennvr/vms/store"
)

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

// registerNVR is a media worker registering itself on start (internal API):
// the same upsert an admin's createNVR runs.
func (s *Server) registerNVR(c *gin.Context) { s.createNVR(c) }

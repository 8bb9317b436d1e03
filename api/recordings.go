package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
)

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

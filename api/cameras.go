package api

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
)

// streamPaths are a camera's stream paths by quality.
type streamPaths struct {
	High  string `json:"high"`
	Mid   string `json:"mid"`
	Low   string `json:"low"`
	MJPEG string `json:"mjpeg"`
}

// cameraRequest is the body of POST (every required field) and PATCH (only
// the fields to change). Pointers tell "absent" from "empty".
type cameraRequest struct {
	Name         *string      `json:"name"`
	Protocol     *string      `json:"protocol"`
	Host         *string      `json:"host"`
	Port         *int         `json:"port"`
	Username     *string      `json:"username"`
	Password     *string      `json:"password"`
	Streams      *streamPaths `json:"streams"`
	SnapshotURL  *string      `json:"snapshot_url"`
	RecordingURL *string      `json:"recording_url"`
	PTZ          *bool        `json:"ptz"`
	AgentID      *string      `json:"agent_id"`
}

// cameraView is a camera as the API shows it: never the password, and URLs
// with any embedded password removed.
type cameraView struct {
	ID           uuid.UUID   `json:"id"`
	Name         string      `json:"name"`
	Protocol     string      `json:"protocol"`
	Host         string      `json:"host"`
	Port         int         `json:"port"`
	Username     string      `json:"username"`
	HasPassword  bool        `json:"has_password"`
	Streams      streamPaths `json:"streams"`
	SnapshotURL  string      `json:"snapshot_url"`
	RecordingURL string      `json:"recording_url"`
	PTZ          bool        `json:"ptz"`
	AgentID      *uuid.UUID  `json:"agent_id"`
	// AgentOnline: the camera's agent holds a control connection to the
	// API (see agentOnline).
	AgentOnline bool      `json:"agent_online"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func viewCamera(c *store.Camera) cameraView {
	return cameraView{
		ID: c.ID, Name: c.Name, Protocol: c.Protocol, Host: c.Host, Port: c.Port,
		Username: c.Username, HasPassword: c.Password != "",
		Streams:     streamPaths{High: c.StreamHigh, Mid: c.StreamMid, Low: c.StreamLow, MJPEG: c.StreamMJPEG},
		SnapshotURL: redactURL(c.SnapshotURL), RecordingURL: redactURL(c.RecordingURL),
		PTZ: c.PTZ, AgentID: c.AgentID, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}

// viewCameras is cams as the API shows them, with their agents' online
// state; it answers and reports false when that cannot be read.
func (s *Server) viewCameras(c *gin.Context, cams []store.Camera) ([]cameraView, bool) {
	agents, err := s.opts.Store.ListAgents(c.Request.Context(), account(c).ID)
	if err != nil {
		failErr(c, "agents", err)
		return nil, false
	}
	online := make(map[uuid.UUID]bool, len(agents))
	now := time.Now()
	for i := range agents {
		online[agents[i].ID] = s.agentOnline(&agents[i], now)
	}
	out := make([]cameraView, len(cams))
	for i := range cams {
		out[i] = viewCamera(&cams[i])
		out[i].AgentOnline = cams[i].AgentID != nil && online[*cams[i].AgentID]
	}
	return out, true
}

// respondCamera answers with cam as the API shows it.
func (s *Server) respondCamera(c *gin.Context, status int, cam *store.Camera) {
	if views, ok := s.viewCameras(c, []store.Camera{*cam}); ok {
		c.JSON(status, views[0])
	}
}

// agentOnline: an API replica holds the agent's control connection. The
// replica stamps the agent online on connect and again every ping interval
// while the agent answers, and offline on disconnect; a replica that died
// cannot write the offline mark, so an online mark older than the
// keepalive timeout (three ping intervals, after which a replica drops a
// silent agent) counts as offline.
func (s *Server) agentOnline(a *store.Agent, now time.Time) bool {
	return a.Online && a.LastSeenAt != nil && now.Sub(*a.LastSeenAt) < s.keepaliveTimeout()
}

// redactURL hides a password embedded in a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// cameraURL is the URL the agent pulls: scheme by protocol, credentials
// embedded, the quality's path.
func cameraURL(cam *store.Camera, path string) string {
	scheme := cam.Protocol
	if scheme == store.ProtocolMJPEG {
		scheme = "http"
	}
	path, query, _ := strings.Cut(path, "?")
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(cam.Host, strconv.Itoa(cam.Port)), Path: path, RawQuery: query}
	if cam.Username != "" {
		u.User = url.UserPassword(cam.Username, cam.Password)
	}
	return u.String()
}

// withCredentials puts the camera's user name and password into raw unless
// it carries credentials of its own.
func withCredentials(raw, username, password string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || username == "" {
		return raw
	}
	u.User = url.UserPassword(username, password)
	return u.String()
}

var defaultPorts = map[string]int{
	store.ProtocolRTSP: 554, store.ProtocolRTMP: 1935, store.ProtocolHTTP: 80, store.ProtocolMJPEG: 80,
}

// apply copies the request's present fields onto cam and checks the result.
// It returns a message for the client when the camera would be invalid.
func (r *cameraRequest) apply(cam *store.Camera, creating bool) string {
	if creating {
		switch {
		case r.Name == nil:
			return "name is required"
		case r.Protocol == nil:
			return "protocol is required"
		case r.Host == nil:
			return "host is required"
		}
	}
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = strings.TrimSpace(*src)
		}
	}
	set(&cam.Name, r.Name)
	set(&cam.Protocol, r.Protocol)
	set(&cam.Host, r.Host)
	set(&cam.Username, r.Username)
	set(&cam.SnapshotURL, r.SnapshotURL)
	set(&cam.RecordingURL, r.RecordingURL)
	if r.Password != nil {
		cam.Password = *r.Password
	}
	if r.Port != nil {
		cam.Port = *r.Port
	}
	if r.PTZ != nil {
		cam.PTZ = *r.PTZ
	}
	if r.Streams != nil {
		cam.StreamHigh, cam.StreamMid = strings.TrimSpace(r.Streams.High), strings.TrimSpace(r.Streams.Mid)
		cam.StreamLow, cam.StreamMJPEG = strings.TrimSpace(r.Streams.Low), strings.TrimSpace(r.Streams.MJPEG)
	}

	if cam.Name == "" || len(cam.Name) > 200 {
		return "name must be 1 to 200 characters"
	}
	if _, ok := defaultPorts[cam.Protocol]; !ok {
		return `protocol must be one of "rtsp", "rtmp", "http", "mjpeg"`
	}
	if cam.Protocol == store.ProtocolRTMP {
		// The agent cannot pull RTMP yet (gortmplib needs a newer mediacommon
		// than gortsplib v4.16.2 builds with): refuse rather than record nothing.
		return "rtmp cameras are not supported yet: use the camera's RTSP or MJPEG stream"
	}
	if cam.Port == 0 && r.Port == nil {
		cam.Port = defaultPorts[cam.Protocol]
	}
	if cam.Port < 1 || cam.Port > 65535 {
		return "port must be between 1 and 65535"
	}
	if cam.Host == "" || len(cam.Host) > 253 || strings.ContainsAny(cam.Host, "/@?# \t") {
		return "host must be a host name or IP address (no scheme, path or credentials)"
	}
	if len(cam.Username) > 200 || len(cam.Password) > 200 {
		return "username and password must be at most 200 characters"
	}
	for name, p := range map[string]string{"high": cam.StreamHigh, "mid": cam.StreamMid, "low": cam.StreamLow, "mjpeg": cam.StreamMJPEG} {
		if p != "" && (!strings.HasPrefix(p, "/") || len(p) > 1024 || strings.ContainsAny(p, " \t\r\n")) {
			return "streams." + name + " must be a path starting with /"
		}
	}
	if cam.StreamHigh == "" && cam.StreamMid == "" && cam.StreamLow == "" && cam.StreamMJPEG == "" {
		return "streams needs at least one path (high, mid, low or mjpeg)"
	}
	for name, s := range map[string]string{"snapshot_url": cam.SnapshotURL, "recording_url": cam.RecordingURL} {
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "rtsp") {
			return name + " must be an absolute http, https or rtsp URL"
		}
	}
	return ""
}

// resolveAgent sets the camera's agent: the one named, or the account's
// only agent when none is named.
func (s *Server) resolveAgent(c *gin.Context, cam *store.Camera, agentID *string) bool {
	agents, err := s.opts.Store.ListAgents(c.Request.Context(), cam.AccountID)
	if err != nil {
		failErr(c, "agents", err)
		return false
	}
	if agentID == nil {
		if cam.AgentID == nil && len(agents) == 1 {
			cam.AgentID = &agents[0].ID
		} else if cam.AgentID == nil && len(agents) > 1 {
			invalid(c, "agent_id is required: the account has %d agents", len(agents))
			return false
		}
		return true
	}
	id, err := uuid.Parse(*agentID)
	if err != nil {
		invalid(c, "agent_id must be a UUID")
		return false
	}
	for _, a := range agents {
		if a.ID == id {
			cam.AgentID = &a.ID
			return true
		}
	}
	invalid(c, "agent_id names no agent of this account")
	return false
}

func (s *Server) createCamera(c *gin.Context) {
	var req cameraRequest
	if !bindJSON(c, &req) {
		return
	}
	cam := &store.Camera{AccountID: account(c).ID}
	if msg := req.apply(cam, true); msg != "" {
		invalid(c, "%s", msg)
		return
	}
	if !s.resolveAgent(c, cam, req.AgentID) {
		return
	}
	if err := s.opts.Store.CreateCamera(c.Request.Context(), cam); err != nil {
		failErr(c, "camera", err)
		return
	}
	s.respondCamera(c, http.StatusCreated, cam)
}

// camera reads the :id camera of the caller's account, or answers.
func (s *Server) camera(c *gin.Context) (*store.Camera, bool) {
	id, ok := pathID(c)
	if !ok {
		return nil, false
	}
	cam, err := s.opts.Store.GetCamera(c.Request.Context(), account(c).ID, id)
	if err != nil {
		failErr(c, "camera", err)
		return nil, false
	}
	return cam, true
}

func (s *Server) getCamera(c *gin.Context) {
	if cam, ok := s.camera(c); ok {
		s.respondCamera(c, http.StatusOK, cam)
	}
}

func (s *Server) listCameras(c *gin.Context) {
	page, ok := pageParams(c)
	if !ok {
		return
	}
	cams, next, err := s.opts.Store.ListCameras(c.Request.Context(), account(c).ID, page)
	if err != nil {
		failErr(c, "cameras", err)
		return
	}
	items, ok := s.viewCameras(c, cams)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, listBody[cameraView]{Items: items, NextCursor: next})
}

func (s *Server) updateCamera(c *gin.Context) {
	cam, ok := s.camera(c)
	if !ok {
		return
	}
	var req cameraRequest
	if !bindJSON(c, &req) {
		return
	}
	if msg := req.apply(cam, false); msg != "" {
		invalid(c, "%s", msg)
		return
	}
	if !s.resolveAgent(c, cam, req.AgentID) {
		return
	}
	if err := s.opts.Store.UpdateCamera(c.Request.Context(), cam); err != nil {
		failErr(c, "camera", err)
		return
	}
	s.respondCamera(c, http.StatusOK, cam)
}

func (s *Server) deleteCamera(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	err := s.opts.Store.DeleteCamera(c.Request.Context(), account(c).ID, id)
	if err == store.ErrConflict {
		fail(c, http.StatusConflict, "camera_has_channels", "delete the camera's channels first")
		return
	}
	if err != nil {
		failErr(c, "camera", err)
		return
	}
	c.Status(http.StatusNoContent)
}

// streamPath is the camera's stream path for a quality ("" when it has
// none or the quality is unknown).
func streamPath(cam *store.Camera, quality string) string {
	path, _ := cam.StreamPath(quality)
	return path
}

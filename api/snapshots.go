package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
)

type snapshotRequest struct {
	Source string `json:"source"`
}

type snapshotView struct {
	ID          uuid.UUID `json:"id"`
	ChannelID   uuid.UUID `json:"channel_id"`
	Source      string    `json:"source"`
	Status      string    `json:"status"`
	UploadURL   string    `json:"upload_url,omitempty"`
	URL         string    `json:"url,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	Size        int64     `json:"size,omitempty"`
	Error       string    `json:"error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

func viewSnapshot(sn *store.Snapshot) snapshotView {
	return snapshotView{ID: sn.ID, ChannelID: sn.ChannelID, Source: sn.Source, Status: sn.Status,
		ContentType: sn.ContentType, Size: sn.Size, Error: sn.Error, CreatedAt: sn.CreatedAt}
}

func (s *Server) createSnapshot(c *gin.Context) {
	ch, ok := s.channel(c)
	if !ok {
		return
	}
	var req snapshotRequest
	if !bindJSON(c, &req) {
		return
	}
	if req.Source != contract.SnapshotClient && req.Source != contract.SnapshotAgent {
		invalid(c, `source must be "client" or "agent"`)
		return
	}
	var cam *store.Camera
	if req.Source == contract.SnapshotAgent {
		var err error
		if cam, err = s.opts.Store.GetCamera(c.Request.Context(), ch.AccountID, ch.CameraID); err != nil {
			failErr(c, "camera", err)
			return
		}
		switch {
		case cam.SnapshotURL == "":
			invalid(c, "the channel's camera has no snapshot_url for its agent to capture")
			return
		case cam.AgentID == nil:
			invalid(c, "the channel's camera has no agent to capture it")
			return
		}
	}
	sn := &store.Snapshot{AccountID: ch.AccountID, ChannelID: ch.ID, Source: req.Source}
	if err := s.opts.Store.CreateSnapshot(c.Request.Context(), sn); err != nil {
		failErr(c, "snapshot", err)
		return
	}
	start := client.StartWorkflowOptions{
		ID:                       contract.SnapshotWorkflowID(sn.ID.String()),
		TaskQueue:                s.opts.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			contract.ChannelIDKey.ValueSet(ch.ID.String()),
			contract.SnapshotStatusKey.ValueSet(contract.SnapshotPending),
		),
	}
	in := contract.SnapshotInput{SnapshotID: sn.ID.String(), ChannelID: ch.ID.String(), Source: sn.Source,
		Key: sn.Key, URLExpiry: s.opts.PresignExpiry}
	view := viewSnapshot(sn)
	if sn.Source == contract.SnapshotAgent {
		in.AgentID, in.CameraID = cam.AgentID.String(), cam.ID.String()
		if _, err := s.opts.Temporal.ExecuteWorkflow(c.Request.Context(), start, workflows.SnapshotWorkflow, in); err != nil {
			failErr(c, "snapshot workflow", err)
			return
		}
		c.JSON(http.StatusCreated, view)
		return
	}
	// Client path: the workflow hands out the upload URL, so the URL's expiry
	// and the workflow's timer are one and the same.
	handle, err := s.opts.Temporal.UpdateWithStartWorkflow(c.Request.Context(), client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: s.opts.Temporal.NewWithStartWorkflowOperation(start, workflows.SnapshotWorkflow, in),
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   contract.UpdateUploadURL,
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err == nil {
		err = handle.Get(c.Request.Context(), &view.UploadURL)
	}
	if err != nil {
		failErr(c, "snapshot workflow", err)
		return
	}
	c.JSON(http.StatusCreated, view)
}

func (s *Server) completeSnapshot(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	sn, err := s.opts.Store.GetSnapshot(c.Request.Context(), account(c).ID, id)
	if err != nil {
		failErr(c, "snapshot", err)
		return
	}
	if sn.Source != contract.SnapshotClient {
		invalid(c, "only client snapshots are completed by the client")
		return
	}
	if sn.Status != contract.SnapshotPending {
		fail(c, http.StatusConflict, "snapshot_not_pending", "snapshot is already %s", sn.Status)
		return
	}
	err = s.opts.Temporal.SignalWorkflow(c.Request.Context(), contract.SnapshotWorkflowID(sn.ID.String()), "", contract.SignalComplete, nil)
	if isNotFound(err) {
		fail(c, http.StatusConflict, "snapshot_not_pending", "snapshot is no longer waiting for an upload")
		return
	}
	if err != nil {
		failErr(c, "snapshot workflow", err)
		return
	}
	c.JSON(http.StatusAccepted, viewSnapshot(sn))
}

func (s *Server) getSnapshot(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	sn, err := s.opts.Store.GetSnapshot(c.Request.Context(), account(c).ID, id)
	if err != nil {
		failErr(c, "snapshot", err)
		return
	}
	view := viewSnapshot(sn)
	if sn.Status == contract.SnapshotReady {
		if view.URL, err = s.opts.Objects.PresignGet(c.Request.Context(), sn.Key, s.opts.PresignExpiry); err != nil {
			failErr(c, "snapshot URL", err)
			return
		}
	}
	c.JSON(http.StatusOK, view)
}

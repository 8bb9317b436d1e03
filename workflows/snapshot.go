package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/workflows/contract"
)

const (
	// uploadSlack lets an upload that began just before the URL expired
	// finish before the snapshot is checked one last time.
	uploadSlack = 10 * time.Second
)

// Why a snapshot fails.
const (
	// An input naming no agent comes from an API that predates agent
	// capture (or a workflow started before it): it fails as it always did.
	reasonNoAgentCapture = "no agent capture yet"
	reasonAgentOffline   = "agent offline"
)

// versionAgentSnapshot guards the agent path: before it, an agent snapshot
// failed at once with reasonNoAgentCapture.
const versionAgentSnapshot = "agent-snapshot"

// SnapshotWorkflow takes one still image. Client source: the upload-url
// update hands out a presigned PUT valid until the workflow's expiry; the
// complete signal (or, failing it, the expiry) has the object checked:
// a JPEG or PNG within the size bound is ready, anything else failed, and
// no upload at all expired. Agent source: a presigned PUT goes to the
// camera's agent in a snapshot command; the agent fetches the camera's
// snapshot URL and uploads it, and once it acknowledges the object is
// checked the same way. An agent that is offline, silent or that could not
// reach the camera fails the snapshot with the reason.
func SnapshotWorkflow(ctx workflow.Context, in contract.SnapshotInput) error {
	w := &snapshotWorkflow{in: in, status: contract.SnapshotPending}
	if err := w.setup(ctx); err != nil {
		return err
	}
	return w.run(ctx)
}

type snapshotWorkflow struct {
	in        contract.SnapshotInput
	status    string
	expiresAt time.Time // the upload URL's end
	checking  bool      // the upload is being checked: no more URLs
	updatedAt time.Time
}

func (w *snapshotWorkflow) setup(ctx workflow.Context) error {
	w.updatedAt = workflow.Now(ctx)
	w.expiresAt = w.updatedAt.Add(w.urlExpiry())
	err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateUploadURL, w.uploadURL,
		workflow.UpdateHandlerOptions{Validator: w.validateUploadURL})
	if err != nil {
		return err
	}
	return upsertKeywords(ctx, keyword{contract.ChannelIDKey, w.in.ChannelID}, keyword{contract.SnapshotStatusKey, w.status})
}

func (w *snapshotWorkflow) validateUploadURL(ctx workflow.Context) error {
	switch {
	case w.in.Source != contract.SnapshotClient:
		return temporal.NewApplicationError("an agent snapshot takes no upload from the client", "NotClientSnapshot")
	case w.status != contract.SnapshotPending || w.checking:
		return temporal.NewApplicationError(fmt.Sprintf("snapshot is %s", w.status), "SnapshotNotPending")
	case !workflow.Now(ctx).Before(w.expiresAt):
		return temporal.NewApplicationError("the upload window has closed", "SnapshotNotPending")
	}
	return nil
}

// uploadURL presigns a PUT that ends with the workflow's expiry, whenever it
// is asked for.
func (w *snapshotWorkflow) uploadURL(ctx workflow.Context) (string, error) {
	ctx = withAnswerActivities(ctx)
	// S3 counts expiry in whole seconds: round up.
	expiry := (w.expiresAt.Sub(workflow.Now(ctx)) + time.Second - 1).Truncate(time.Second)
	var url string
	err := workflow.ExecuteActivity(ctx, acts.PresignSnapshotPut, activities.PresignPutInput{
		Key: w.in.Key, Expiry: expiry,
	}).Get(ctx, &url)
	return url, err
}

func (w *snapshotWorkflow) run(ctx workflow.Context) error {
	ctx = withActivities(ctx, 30*time.Second)
	if w.in.Source != contract.SnapshotClient {
		return w.runAgent(ctx)
	}
	completed := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalComplete), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		completed = true
	})
	sel.AddFuture(workflow.NewTimer(ctx, w.expiresAt.Sub(workflow.Now(ctx))+uploadSlack), func(workflow.Future) {})
	sel.Select(ctx)

	w.checking = true
	if err := allHandlersFinished(ctx); err != nil {
		return err
	}
	var check activities.SnapshotCheck
	if err := workflow.ExecuteActivity(ctx, acts.VerifySnapshot, w.in.SnapshotID).Get(ctx, &check); err != nil {
		if activities.HasErrorType(err, activities.ErrSnapshotDeleted) {
			return nil
		}
		return err
	}
	switch {
	case check.OK:
		return w.updateStatus(ctx, contract.SnapshotReady, check, "")
	case !completed && !check.Uploaded:
		return w.updateStatus(ctx, contract.SnapshotExpired, check, "no upload before the URL expired")
	default:
		return w.updateStatus(ctx, contract.SnapshotFailed, check, check.Reason)
	}
}

// runAgent has the camera's agent capture the snapshot.
func (w *snapshotWorkflow) runAgent(ctx workflow.Context) error {
	v := workflow.GetVersion(ctx, versionAgentSnapshot, workflow.DefaultVersion, 1)
	if v == workflow.DefaultVersion || w.in.AgentID == "" {
		return w.updateStatus(ctx, contract.SnapshotFailed, activities.SnapshotCheck{}, reasonNoAgentCapture)
	}
	var uploadURL string
	err := workflow.ExecuteActivity(ctx, acts.PresignSnapshotPut, activities.PresignPutInput{
		Key: w.in.Key, Expiry: w.urlExpiry(),
	}).Get(ctx, &uploadURL)
	if err != nil {
		return err
	}
	ack, err := sendAgentCommand(ctx, w.in.AgentID, control.Command{
		V: control.Version, ID: w.in.SnapshotID, Type: control.TypeSnapshot,
		CameraID: w.in.CameraID, UploadURL: uploadURL,
	}, 0, 0)
	switch {
	case activities.HasErrorType(err, control.ErrOffline):
		return w.updateStatus(ctx, contract.SnapshotFailed, activities.SnapshotCheck{}, reasonAgentOffline)
	case err != nil:
		return w.updateStatus(ctx, contract.SnapshotFailed, activities.SnapshotCheck{}, applicationMessage(err))
	case !ack.OK:
		return w.updateStatus(ctx, contract.SnapshotFailed, activities.SnapshotCheck{}, ack.Error)
	}
	var check activities.SnapshotCheck
	if err := workflow.ExecuteActivity(ctx, acts.VerifySnapshot, w.in.SnapshotID).Get(ctx, &check); err != nil {
		if activities.HasErrorType(err, activities.ErrSnapshotDeleted) {
			return nil
		}
		return err
	}
	if check.OK {
		return w.updateStatus(ctx, contract.SnapshotReady, check, "")
	}
	return w.updateStatus(ctx, contract.SnapshotFailed, check, check.Reason)
}

// updateStatus is the one place a snapshot's status changes: the row, the
// workflow's state (with its time) and the SnapshotStatus search attribute.
func (w *snapshotWorkflow) updateStatus(ctx workflow.Context, status string, check activities.SnapshotCheck, reason string) error {
	err := workflow.ExecuteActivity(ctx, acts.SetSnapshotStatus, activities.SnapshotStatusInput{
		SnapshotID: w.in.SnapshotID, Status: status, ContentType: check.ContentType, Size: check.Size, Error: reason,
	}).Get(ctx, nil)
	if err != nil && !activities.HasErrorType(err, activities.ErrSnapshotDeleted) {
		return err
	}
	w.status, w.updatedAt = status, workflow.Now(ctx)
	return upsertKeywords(ctx, keyword{contract.SnapshotStatusKey, status})
}

func (w *snapshotWorkflow) urlExpiry() time.Duration {
	if w.in.URLExpiry > 0 {
		return w.in.URLExpiry
	}
	return contract.DefaultPresignExpiry
}

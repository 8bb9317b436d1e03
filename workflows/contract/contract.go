// Package contract is the one place that names what the NVR's durable flows
// share with their callers and their activities: workflow ids, the task
// queue, signal, query and update names, search attribute keys, the statuses
// the workflows move clips, stream sessions and snapshots through, and the
// input and result types. Handlers, activities, workflows and tests import
// it directly; nothing re-exports it.
//
// It is a leaf package so that activities (which signal clip workflows) and
// workflows (which call activities) can both use it without an import cycle,
// and so that workflow code needs no storage package for a status.
package contract

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/opennvr/vms/control"
)

// TaskQueue is the one task queue every workflow worker polls.
const TaskQueue = "vms"

// Workflow ids.
func ClipWorkflowID(clipID string) string         { return "clip-" + clipID }
func StreamWorkflowID(sessionID string) string    { return "stream-" + sessionID }
func SnapshotWorkflowID(snapshotID string) string { return "snapshot-" + snapshotID }

// ChannelWorkflowID names a channel's recording supervisor: one per
// channel, for the channel's whole life.
func ChannelWorkflowID(channelID string) string { return "channel-" + channelID }

// Search attributes kept current by the workflows, so the Temporal UI can
// list jobs by status and channel.
var (
	ClipStatusKey     = temporal.NewSearchAttributeKeyKeyword("ClipStatus")
	ChannelIDKey      = temporal.NewSearchAttributeKeyKeyword("ChannelID")
	SnapshotStatusKey = temporal.NewSearchAttributeKeyKeyword("SnapshotStatus")
	RecordingStateKey = temporal.NewSearchAttributeKeyKeyword("RecordingState")
)

// SearchAttributes lists every custom search attribute, for registering
// them on a namespace (the dev server does so at start). All are Keyword.
var SearchAttributes = []string{"ClipStatus", "ChannelID", "SnapshotStatus", "RecordingState"}

// Stream session states.
const (
	SessionAuthorized = "authorized"
	SessionLive       = "live"
	SessionEnded      = "ended"
	SessionLost       = "lost"
)

// Clip states.
const (
	ClipInProgress = "in_progress"
	ClipFinished   = "finished"
	ClipFailed     = "failed"
)

// Snapshot sources and states.
const (
	SnapshotClient = "client"
	SnapshotAgent  = "agent"

	SnapshotPending = "pending"
	SnapshotReady   = "ready"
	SnapshotFailed  = "failed"
	SnapshotExpired = "expired"
)

// Recording modes of a channel: what its supervisor keeps true.
const (
	RecordingContinuous = "continuous" // always recording (the default)
	RecordingOff        = "off"
)

// RecordQualities are the streams a channel may record.
var RecordQualities = []string{"high", "mid", "low"}

// Recording states of a channel, as its supervisor reports them (the API's
// state.status and the RecordingState search attribute).
const (
	StateStarting     = "starting"      // a session is being started
	StateRecording    = "recording"     // a session is live
	StateRetrying     = "retrying"      // the last start failed or the session ended; waiting out a backoff
	StateAgentOffline = "agent_offline" // the camera's agent is not connected; waiting for it
	StateOff          = "off"           // recording is switched off
)

// Signal, query and update names.
const (
	SignalSegment  = "segment"  // a recording segment was stored (clip and stream workflows)
	SignalStarted  = "started"  // the media worker accepted the stream
	SignalStopped  = "stopped"  // the stream ended
	SignalComplete = "complete" // the client finished its snapshot upload

	// Channel supervisor signals.
	SignalChannelChanged = "channel-changed" // the channel's mode, quality or NVR changed, or it was deleted: re-read it
	SignalAgentOnline    = "agent-online"    // the camera's agent (re)connected
	SignalSession        = "session"         // a recording session went live or ended (SessionSignal)

	QueryProgress       = "progress"        // clip progress
	QueryRecordingState = "recording-state" // a channel supervisor's RecordingState

	UpdateAuthorize = "authorize"  // a media worker asks to accept a stream token
	UpdateUploadURL = "upload-url" // a client asks where to upload its snapshot
)

// Clip defaults, for when nothing configures others (config reads
// VMS_CLIP_GRACE and VMS_CLIP_MAX_LENGTH).
const (
	// DefaultClipGrace is how long past its End a clip waits for late
	// segments; a ClipInput with no Grace (as in histories from before the
	// API sent one) gets it.
	DefaultClipGrace = 2 * time.Minute
	// DefaultClipMaxLength is the longest clip range the API accepts.
	DefaultClipMaxLength = 24 * time.Hour
)

// ClipInput starts a ClipWorkflow.
type ClipInput struct {
	ClipID    string
	ChannelID string
	Start     time.Time
	End       time.Time
	// Grace is how long past End the workflow waits for segments
	// (zero: DefaultClipGrace).
	Grace time.Duration

	// Continued is set by the workflow itself when it continues as new
	// (callers leave it false): a later run of the same clip has waited
	// already.
	Continued bool
}

// ClipProgress is what QueryProgress answers.
type ClipProgress struct {
	Status           string  `json:"status"`
	CoveredSeconds   float64 `json:"covered_seconds"`
	RequestedSeconds float64 `json:"requested_seconds"`
	// Segments is how many recordings the clip holds so far.
	Segments int `json:"segments"`
	// Error says why a clip failed.
	Error string `json:"error,omitempty"`
	// UpdatedAt is the workflow time of the last change.
	UpdatedAt time.Time `json:"updated_at"`
}

// SegmentSignal tells a clip workflow that a recording of its channel was stored.
type SegmentSignal struct {
	RecordingID string
	Start       time.Time
	End         time.Time
}

// StreamInput starts a StreamSessionWorkflow.
type StreamInput struct {
	SessionID     string
	ChannelID     string
	Quality       string
	SegmentLength time.Duration // zero: recording.DefaultSegmentLength
	// Record: the session is one a channel's supervisor started (its token
	// says so); it reports going live and ending to the supervisor.
	Record bool

	// Carried by the workflow itself across continue-as-new; callers leave
	// them zero.
	Authorized bool      // the token was used: a new authorize is refused
	Worker     string    // the media worker that was granted the stream
	Status     string    // SessionAuthorized or SessionLive
	LastSeen   time.Time // when the stream last showed life (authorize, start, segment)
	Segments   int       // segments recorded by the earlier runs
}

// AuthorizeRequest is the authorize update's argument: the API has checked
// the token's signature and expiry; the workflow enforces single use and
// that the channel is active.
type AuthorizeRequest struct {
	Worker string // the media worker asking
}

// ChannelInput starts a channel's supervisor, ChannelWorkflow.
type ChannelInput struct {
	ChannelID string
	// MaxBackoff caps the wait between failed starts (zero:
	// DefaultRecordMaxBackoff).
	MaxBackoff time.Duration

	// Carried by the workflow itself across continue-as-new; callers leave
	// them zero.
	State    RecordingState
	Live     []string // recording sessions live now
	Failures int      // failed starts in a row, for the backoff
	// The camera and agent last commanded: the agent is told to stop once
	// the channel is gone.
	CameraID, AgentID string
}

// DefaultRecordMaxBackoff caps the wait between failed starts of a
// channel's recording: a camera that refuses or is unreachable is retried
// at least this often, never in a tight loop.
const DefaultRecordMaxBackoff = time.Minute

// RecordingState is a channel supervisor's view of its recording, what
// QueryRecordingState answers.
type RecordingState struct {
	Status    string    `json:"status"` // State*
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	// SessionID is the live recording session, if any.
	SessionID string `json:"session_id,omitempty"`
	// Streams counts the streams the agent started for the supervisor;
	// Restarts those after the first.
	Streams  int `json:"streams"`
	Restarts int `json:"restarts"`
}

// SessionSignal tells a channel's supervisor that one of its recording
// sessions went live (SessionLive) or ended (SessionEnded, SessionLost).
type SessionSignal struct {
	SessionID string
	Status    string
}

// DefaultPresignExpiry is the lifetime of a presigned URL when nothing
// configures another (config reads VMS_PRESIGN_EXPIRY): the API's
// downloads and a snapshot's upload URL, whose SnapshotInput with no
// URLExpiry gets it.
const DefaultPresignExpiry = 15 * time.Minute

// SnapshotInput starts a SnapshotWorkflow.
type SnapshotInput struct {
	SnapshotID string
	ChannelID  string
	Source     string // SnapshotClient or SnapshotAgent
	Key        string
	// URLExpiry is the presigned PUT's lifetime; a client that has not
	// uploaded by then finds its snapshot expired (zero:
	// DefaultPresignExpiry).
	URLExpiry time.Duration

	// Source agent: the camera's agent captures it. The camera's snapshot
	// URL and credentials are read when the command is sent to the agent,
	// so they never enter the workflow's history.
	AgentID  string
	CameraID string
}

// Retention: one Temporal Schedule runs RetentionWorkflow; deleting a
// channel starts PurgeChannelWorkflow for its objects.
const RetentionScheduleID = "retention"

// RetentionInterval is how often the retention schedule runs.
const RetentionInterval = time.Hour

func PurgeChannelWorkflowID(channelID string) string { return "purge-channel-" + channelID }

// RetentionInput starts (or continues) a retention sweep.
type RetentionInput struct {
	// AfterChannel resumes a sweep continued as new.
	AfterChannel string
	Deleted      int
}

// AgentCommandWorkflowID names the workflow that delivers one agent command.
func AgentCommandWorkflowID(commandID string) string { return "agent-command-" + commandID }

// AgentCommandInput starts an AgentCommandWorkflow: deliver Command to the
// agent and return its ack.
type AgentCommandInput struct {
	AgentID string
	Command control.Command
	// OfflineAfter and AckTimeout bound the delivery (zero:
	// control.OfflineAfter and control.AckTimeout).
	OfflineAfter time.Duration
	AckTimeout   time.Duration
}

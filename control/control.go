// Package control is the agent control channel: the versioned JSON messages
// the API sends a local agent over the agent's WebSocket
// (GET /internal/v1/agent/control), the acknowledgements the agent answers
// with, and the names Temporal uses to deliver a command to whichever API
// replica holds that agent's connection.
//
// A command reaches an agent as the activity ActivityName executed on the
// task queue TaskQueue(agentID): the replica holding the connection runs a
// worker on that queue while the connection lives. No replica running it
// means the agent is offline (the activity's schedule-to-start timeout); a
// command sent but not acknowledged ends with its start-to-close timeout.
//
// The package is a leaf (no imports from this module) so that api, agent and
// workflows can all share it without import cycles.
package control

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Version is the protocol version of every message; an agent answers a
// command of any other version with an error ack.
const Version = 1

// Path is the control channel's WebSocket endpoint on the API.
const Path = "/internal/v1/agent/control"

// ActivityName is the one activity an agent's task queue serves:
// AgentCommand(ctx, Command) (Ack, error).
const ActivityName = "AgentCommand"

// TaskQueue is the task queue of an agent's commands, served by the API
// replica that holds the agent's connection.
func TaskQueue(agentID string) string { return "agent-" + agentID }

// Delivery timeouts of a command.
const (
	// OfflineAfter is how long a command waits for a replica holding the
	// agent's connection to pick it up (schedule-to-start): past it the
	// agent is offline.
	OfflineAfter = 10 * time.Second
	// AckTimeout is how long the agent has to act and acknowledge once the
	// command was sent (start-to-close).
	AckTimeout = 20 * time.Second
	// ExecTimeout bounds the agent's own work on a command: shorter than
	// AckTimeout, so a slow camera yields an error ack rather than silence.
	ExecTimeout = 15 * time.Second
)

// MaxPending bounds the commands of one agent connection that the API has
// sent and not yet seen acknowledged. The agent queues record and
// stop-record commands up to this many (it runs only a few at once), so
// the thousands of channels of an agent that reconnects are started at the
// agent's pace, each waiting at the agent within its deadline rather than
// in the task queue, where a long wait reads as the agent being offline.
const MaxPending = 256

// Keepalive: both ends ping every PingInterval and drop a connection that
// showed no sign of life (message, ping or pong) for KeepaliveTimeout.
const (
	PingInterval     = 15 * time.Second
	KeepaliveTimeout = 45 * time.Second
)

// Error types of a failed delivery (Temporal application error types), for
// callers that must tell an offline agent from a silent one.
const (
	// ErrOffline: no replica holds the agent's connection, or the
	// connection dropped before the command was sent.
	ErrOffline = "AgentOffline"
	// ErrTimeout: the command was sent but never acknowledged.
	ErrTimeout = "AgentTimeout"
	// ErrBadCommand: the command itself is invalid (a bug or a race with a
	// camera being reassigned); retrying cannot help.
	ErrBadCommand = "BadAgentCommand"
)

// Command types.
const (
	TypePTZ        = "ptz"
	TypeSnapshot   = "snapshot"
	TypeRecord     = "record"      // keep recording a channel: start pushing it unless it is pushed already
	TypeStopRecord = "stop-record" // stop recording a channel
)

// PTZ actions.
const (
	ActionUp      = "up"
	ActionDown    = "down"
	ActionLeft    = "left"
	ActionRight   = "right"
	ActionZoomIn  = "zoom_in"
	ActionZoomOut = "zoom_out"
	ActionHome    = "home"
	ActionStop    = "stop"
	ActionPreset  = "preset"
)

// Actions lists every PTZ action, in the order the API documents them.
var Actions = []string{ActionUp, ActionDown, ActionLeft, ActionRight, ActionZoomIn, ActionZoomOut, ActionHome, ActionStop, ActionPreset}

// DefaultSpeed is a PTZ move's speed when the caller names none.
const DefaultSpeed = 0.5

// Command is one instruction to an agent:
// {"v":1,"id":"…","type":"ptz"|"snapshot",…}.
//
// Callers (the API, workflows) fill the fields above Camera; Camera is
// filled by the API replica that holds the agent's connection, from the
// database, just before it writes the command to the WebSocket. Camera
// credentials therefore never enter Temporal histories (which the Temporal
// UI shows to anyone with access to it), only the owning agent's
// authenticated channel.
type Command struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	Type string `json:"type"`
	// CameraID is the camera the command is about; the replica checks it is
	// assigned to the agent.
	CameraID string `json:"camera_id"`

	// PTZ.
	Action string  `json:"action,omitempty"`
	Preset int     `json:"preset,omitempty"` // 1-based, for ActionPreset
	Speed  float64 `json:"speed,omitempty"`  // (0, 1]; zero: DefaultSpeed

	// Snapshot: a presigned PUT for the captured image.
	UploadURL string `json:"upload_url,omitempty"`

	// Record and stop-record: the channel, and the camera stream it
	// records (high, mid or low).
	ChannelID string `json:"channel_id,omitempty"`
	Quality   string `json:"quality,omitempty"`

	Camera *Camera `json:"camera,omitempty"`
	// Stream is filled, like Camera, by the replica holding the connection
	// for a record command: a fresh single-use stream token and the media
	// worker to push to. Tokens never enter Temporal histories either.
	Stream *Stream `json:"stream,omitempty"`
}

// Stream is where and with what a record command's stream goes.
type Stream struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	WorkerURL string `json:"worker_url"`
}

// Camera is how the agent reaches the camera. It holds credentials: never
// log it.
type Camera struct {
	// ONVIF is the host:port of the camera's ONVIF device service
	// (http://<ONVIF>/onvif/device_service).
	ONVIF    string `json:"onvif,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// SnapshotURL is the camera's still-image URL, credentials included.
	SnapshotURL string `json:"snapshot_url,omitempty"`
	// StreamURL is the recorded stream's address, credentials included
	// (record commands), and Protocol the camera's protocol.
	StreamURL string `json:"stream_url,omitempty"`
	Protocol  string `json:"protocol,omitempty"`
}

// Ack answers a command: {"v":1,"id":"…","ok":true} or
// {"v":1,"id":"…","ok":false,"error":"…"}.
type Ack struct {
	V     int    `json:"v"`
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Started answers a record command: true when the agent started a new
	// stream, false when it was pushing the channel already.
	Started bool `json:"started,omitempty"`
	// Busy (with ok false): the agent had no room for the command and did
	// nothing; it may be sent again soon. Not a failure of the camera.
	Busy bool `json:"busy,omitempty"`
}

// Busy is the ack of command id the agent had no room for.
func Busy(id string, err error) Ack { return Ack{V: Version, ID: id, Error: err.Error(), Busy: true} }

// Failed is the error ack for command id.
func Failed(id string, err error) Ack { return Ack{V: Version, ID: id, Error: err.Error()} }

// Done is the success ack for command id.
func Done(id string) Ack { return Ack{V: Version, ID: id, OK: true} }

// Validate checks what the caller of a command is responsible for: version,
// id, type and the type's fields. Camera is checked by the agent (it is
// filled in only on the way out).
func (c Command) Validate() error {
	if c.V != Version {
		return fmt.Errorf("unsupported protocol version %d (want %d)", c.V, Version)
	}
	if c.ID == "" {
		return errors.New("command has no id")
	}
	if c.CameraID == "" {
		return errors.New("command names no camera")
	}
	switch c.Type {
	case TypePTZ:
		return ValidatePTZ(c.Action, c.Preset, c.Speed)
	case TypeSnapshot:
		u, err := url.Parse(c.UploadURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("snapshot command needs an http(s) upload_url")
		}
		return nil
	case TypeRecord:
		if c.ChannelID == "" || !slices.Contains([]string{"high", "mid", "low"}, c.Quality) {
			return errors.New("record command needs channel_id and quality high, mid or low")
		}
		return nil
	case TypeStopRecord:
		if c.ChannelID == "" {
			return errors.New("stop-record command needs channel_id")
		}
		return nil
	case "":
		return errors.New("command has no type")
	default:
		return fmt.Errorf("unknown command type %q", c.Type)
	}
}

// ValidatePTZ checks a PTZ action and its parameters; speed zero means
// DefaultSpeed.
func ValidatePTZ(action string, preset int, speed float64) error {
	if !slices.Contains(Actions, action) {
		return fmt.Errorf("action must be one of %s", strings.Join(Actions, ", "))
	}
	if action == ActionPreset && preset < 1 {
		return errors.New("action preset needs preset, an integer of at least 1")
	}
	if action != ActionPreset && preset != 0 {
		return errors.New("preset is only for action preset")
	}
	if speed < 0 || speed > 1 {
		return errors.New("speed must be greater than 0 and at most 1")
	}
	return nil
}

// LogValue keeps credentials and presigned URLs out of logs: a command logs
// as its id, type, camera and action only.
func (c Command) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("id", c.ID), slog.String("type", c.Type), slog.String("camera", c.CameraID)}
	if c.Action != "" {
		attrs = append(attrs, slog.String("action", c.Action))
	}
	return slog.GroupValue(attrs...)
}

package store

import (
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Account owns cameras, channels and everything recorded from them.
type Account struct {
	bun.BaseModel `bun:"table:accounts"`

	ID        uuid.UUID `bun:"id,pk,type:uuid" json:"id"`
	Name      string    `bun:"name,notnull" json:"name"`
	Admin     bool      `bun:"admin,notnull,default:false" json:"admin"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
}

// APIKey authenticates public API calls for one account. Only the hash of
// the key is stored.
type APIKey struct {
	bun.BaseModel `bun:"table:api_keys"`

	ID        uuid.UUID `bun:"id,pk,type:uuid"`
	AccountID uuid.UUID `bun:"account_id,notnull,type:uuid"`
	Name      string    `bun:"name,notnull"`
	Hash      string    `bun:"hash,notnull,unique"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// NVR states.
const (
	NVRActive   = "active"
	NVRDraining = "draining"
)

// NVR is a cloud NVR instance: one media worker reachable at MediaURL.
type NVR struct {
	bun.BaseModel `bun:"table:nvrs"`

	ID        uuid.UUID `bun:"id,pk,type:uuid" json:"id"`
	Name      string    `bun:"name,notnull,unique" json:"name"`
	MediaURL  string    `bun:"media_url,notnull" json:"media_url"`
	Capacity  int       `bun:"capacity,notnull" json:"capacity"`
	Status    string    `bun:"status,notnull" json:"status"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
	// LastSeenAt is when the NVR's media worker last reported in; a worker
	// silent for too long is taken for dead and its channels move.
	LastSeenAt *time.Time `bun:"last_seen_at" json:"last_seen_at,omitempty"`
	// Channels is the number of channels assigned to it (filled by ListNVRs).
	Channels int `bun:"channels,scanonly" json:"channels"`
}

// Agent is a local agent on a customer's LAN that pulls its account's cameras.
type Agent struct {
	bun.BaseModel `bun:"table:agents"`

	ID         uuid.UUID  `bun:"id,pk,type:uuid" json:"id"`
	AccountID  uuid.UUID  `bun:"account_id,notnull,type:uuid" json:"account_id"`
	Name       string     `bun:"name,notnull" json:"name"`
	KeyHash    string     `bun:"key_hash,notnull,unique" json:"-"`
	LastSeenAt *time.Time `bun:"last_seen_at" json:"last_seen_at,omitempty"`
	// Online: an API replica holds the agent's control connection (as of
	// LastSeenAt, which the replica refreshes while it does).
	Online    bool      `bun:"online,notnull,default:false" json:"online"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
}

// Camera protocols.
const (
	ProtocolRTSP  = "rtsp"
	ProtocolRTMP  = "rtmp"
	ProtocolHTTP  = "http"
	ProtocolMJPEG = "mjpeg"
)

// Camera is an IP camera registered to an account. Password is write-only:
// it is never serialised.
type Camera struct {
	bun.BaseModel `bun:"table:cameras"`

	ID           uuid.UUID  `bun:"id,pk,type:uuid"`
	AccountID    uuid.UUID  `bun:"account_id,notnull,type:uuid"`
	AgentID      *uuid.UUID `bun:"agent_id,type:uuid"`
	Name         string     `bun:"name,notnull"`
	Protocol     string     `bun:"protocol,notnull"`
	Host         string     `bun:"host,notnull"`
	Port         int        `bun:"port,notnull"`
	Username     string     `bun:"username,notnull"`
	Password     string     `bun:"password,notnull"`
	StreamHigh   string     `bun:"stream_high,notnull"`
	StreamMid    string     `bun:"stream_mid,notnull"`
	StreamLow    string     `bun:"stream_low,notnull"`
	StreamMJPEG  string     `bun:"stream_mjpeg,notnull"`
	SnapshotURL  string     `bun:"snapshot_url,notnull"`
	RecordingURL string     `bun:"recording_url,notnull"`
	PTZ          bool       `bun:"ptz,notnull"`
	CreatedAt    time.Time  `bun:"created_at,notnull"`
	UpdatedAt    time.Time  `bun:"updated_at,notnull"`
}

// StreamPath is the camera's stream path for a quality (high, mid, low or
// mjpeg); known is false for any other quality.
func (c *Camera) StreamPath(quality string) (path string, known bool) {
	switch quality {
	case "high":
		return c.StreamHigh, true
	case "mid":
		return c.StreamMid, true
	case "low":
		return c.StreamLow, true
	case "mjpeg":
		return c.StreamMJPEG, true
	}
	return "", false
}

// Channel states.
const (
	ChannelActive   = "active"
	ChannelDisabled = "disabled"
)

// Channel makes a camera recordable on one NVR instance.
type Channel struct {
	bun.BaseModel `bun:"table:channels"`

	ID            uuid.UUID `bun:"id,pk,type:uuid"`
	AccountID     uuid.UUID `bun:"account_id,notnull,type:uuid"`
	CameraID      uuid.UUID `bun:"camera_id,notnull,type:uuid"`
	NVRID         uuid.UUID `bun:"nvr_id,notnull,type:uuid"`
	Status        string    `bun:"status,notnull"`
	RetentionDays int       `bun:"retention_days,notnull"`
	CreatedAt     time.Time `bun:"created_at,notnull"`

	// Recording is the desired recording mode (contract.RecordingContinuous
	// or contract.RecordingOff) and RecordQuality the stream it records
	// (high, mid or low); the channel's supervisor workflow acts on them.
	Recording     string `bun:"recording,notnull,default:'continuous'"`
	RecordQuality string `bun:"record_quality,notnull,default:'high'"`
	// State is what the supervisor last reported (contract.State*), since
	// when, and the last error that kept it from recording.
	StateStatus string     `bun:"state_status,notnull,default:'starting'"`
	StateSince  *time.Time `bun:"state_since"`
	StateError  string     `bun:"state_error,notnull,default:''"`
	// StateRestarts counts the recording streams restarted after the first.
	StateRestarts int `bun:"state_restarts,notnull,default:0"`
	// LastSegmentEnd is the end of the channel's newest recording (filled
	// by GetChannel and ListChannels; nil when it has none).
	LastSegmentEnd *time.Time `bun:"last_segment_end,scanonly"`
}

// StreamSession is one live stream of a channel, from token to stop.
type StreamSession struct {
	bun.BaseModel `bun:"table:stream_sessions"`

	ID        uuid.UUID  `bun:"id,pk,type:uuid"`
	ChannelID uuid.UUID  `bun:"channel_id,notnull,type:uuid"`
	Quality   string     `bun:"quality,notnull"`
	Status    string     `bun:"status,notnull"`
	Worker    string     `bun:"worker,notnull"`
	CreatedAt time.Time  `bun:"created_at,notnull"`
	StartedAt *time.Time `bun:"started_at"`
	EndedAt   *time.Time `bun:"ended_at"`
}

// Recording is one uploaded fMP4 segment.
type Recording struct {
	bun.BaseModel `bun:"table:recordings"`

	ID         uuid.UUID `bun:"id,pk,type:uuid"`
	ChannelID  uuid.UUID `bun:"channel_id,notnull,type:uuid"`
	SessionID  uuid.UUID `bun:"session_id,notnull,type:uuid"`
	Key        string    `bun:"key,notnull,unique"`
	Start      time.Time `bun:"start_time,notnull"`
	End        time.Time `bun:"end_time,notnull"`
	DurationMS int64     `bun:"duration_ms,notnull"`
	Size       int64     `bun:"size,notnull"`
	Codec      string    `bun:"codec,notnull"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
}

// Clip is a time range of a channel, finished asynchronously as one MP4.
type Clip struct {
	bun.BaseModel `bun:"table:clips"`

	ID        uuid.UUID `bun:"id,pk,type:uuid"`
	AccountID uuid.UUID `bun:"account_id,notnull,type:uuid"`
	ChannelID uuid.UUID `bun:"channel_id,notnull,type:uuid"`
	Start     time.Time `bun:"start_time,notnull"`
	End       time.Time `bun:"end_time,notnull"`
	Status    string    `bun:"status,notnull"`
	Progress  float64   `bun:"progress,notnull"`
	ObjectKey string    `bun:"object_key,notnull"`
	Error     string    `bun:"error,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
}

// ClipSegment links a clip to a recording; the pair is unique so appends are
// idempotent.
type ClipSegment struct {
	bun.BaseModel `bun:"table:clip_segments"`

	ClipID      uuid.UUID `bun:"clip_id,pk,type:uuid"`
	RecordingID uuid.UUID `bun:"recording_id,pk,type:uuid"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
}

// Snapshot is one still image of a channel.
type Snapshot struct {
	bun.BaseModel `bun:"table:snapshots"`

	ID          uuid.UUID `bun:"id,pk,type:uuid"`
	AccountID   uuid.UUID `bun:"account_id,notnull,type:uuid"`
	ChannelID   uuid.UUID `bun:"channel_id,notnull,type:uuid"`
	Source      string    `bun:"source,notnull"`
	Status      string    `bun:"status,notnull"`
	Key         string    `bun:"key,notnull"`
	ContentType string    `bun:"content_type,notnull"`
	Size        int64     `bun:"size,notnull"`
	Error       string    `bun:"error,notnull"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
	UpdatedAt   time.Time `bun:"updated_at,notnull"`
}

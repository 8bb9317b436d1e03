// Package media holds what the agent and the media worker share: the
// WebSocket protocol that carries camera streams between them and the fMP4
// helpers both sides need.
//
// Protocol (version 1), agent → media worker over one WebSocket per stream:
//
//  1. The agent sends one text message: a JSON Hello {version, token, tracks,
//     clock}.
//  2. The worker authorizes the token with the control plane and answers with
//     a text message: a JSON Welcome {session_id, segment_seconds}, or closes
//     with CloseBadToken / CloseUnsupportedVersion.
//  3. The agent sends binary messages, one Frame each (see MarshalFrame).
//  4. Keepalive: WebSocket ping/pong; a side that hears nothing for
//     KeepaliveTimeout closes the stream.
//  5. Either side ends with a close code: CloseNormal (stream stopped),
//     CloseBadFrame (malformed frame), CloseSessionEnded (the control plane
//     ended the session).
package media

import (
	"time"
)

// ProtocolVersion is the version an agent announces in its Hello.
const ProtocolVersion = 1

// KeepaliveTimeout is how long either side waits without any message
// (frames, pings or pongs) before it gives up on the stream.
const KeepaliveTimeout = 20 * time.Second

// WebSocket close codes (4000–4999 are application-defined).
const (
	CloseNormal             = 1000
	CloseBadToken           = 4001
	CloseBadFrame           = 4002
	CloseSessionEnded       = 4003
	CloseUnsupportedVersion = 4004
	CloseBadHello           = 4005
)

// Codec names used in Track.Codec.
const (
	CodecH264  = "h264"
	CodecH265  = "h265"
	CodecMJPEG = "mjpeg"
)

// Hello is the first message an agent sends on a stream.
type Hello struct {
	Version int     `json:"version"`
	Token   string  `json:"token"`
	Tracks  []Track `json:"tracks"`
	// Clock is the agent's wall clock when it sent the Hello, in Unix
	// nanoseconds; 0 (absent) from an agent older than the field. The
	// worker compares it with its own clock to catch an agent whose clock
	// is wrong, since every frame's Wall comes from that clock.
	Clock int64 `json:"clock,omitempty"`
}

// Track describes one elementary stream. Parameter sets are carried here
// because many cameras send them only in the SDP, never in-band.
type Track struct {
	ID        uint8  `json:"id"`
	Codec     string `json:"codec"`
	ClockRate uint32 `json:"clock_rate"`
	VPS       []byte `json:"vps,omitempty"` // H.265 only
	SPS       []byte `json:"sps,omitempty"`
	PPS       []byte `json:"pps,omitempty"`
}

// Welcome is the worker's answer to an accepted Hello.
type Welcome struct {
	SessionID      string `json:"session_id"`
	SegmentSeconds int    `json:"segment_seconds"`
}

// Frame is one access unit of one track.
//
// For H.264/H.265 Payload is the access unit's NAL units, each prefixed by
// its 4-byte big-endian length (AVCC layout), without SPS/PPS/VPS/AUD (the
// Hello's track carries them). For MJPEG Payload is one JPEG image.
// DTS and PTS are relative to the stream's first frame; Wall is the capture
// wall-clock time of the frame.
type Frame struct {
	Track    uint8
	Keyframe bool
	DTS      time.Duration
	PTS      time.Duration
	Wall     time.Time
	Payload  []byte
}

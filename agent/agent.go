// Package agent is the local agent that runs on the customer's LAN: it pulls
// camera streams (RTSP through gortsplib, MJPEG over HTTP), pushes them over
// WebSocket to an NVR media worker (see package media for the protocol) and
// exposes a small local HTTP API that apps use to start and stop streams.
//
// The pieces, from the camera outwards:
//
//   - A Source (RTSPSource, MJPEGSource) turns a camera into media.Tracks
//     and media.Frames.
//   - A Pusher runs one Source and forwards its frames to a media worker,
//     reconnecting both ends with capped exponential backoff.
//   - A Manager keeps one Pusher per stream session; Handler serves it as
//     the local HTTP API.
//
// Camera URLs carry credentials (rtsp://user:pass@host/path). They never
// reach a log line or an error message: everything that prints a camera
// address prints RedactURL of it.
package agent

import (
	"context"

	"github.com/opennvr/vms/media"
)

// Source is one camera stream.
//
// Run connects to the camera and delivers its stream until ctx is done or
// the stream fails; it returns ctx.Err() after cancellation. onTracks is
// called exactly once per Run, before the first frame, when the parameter
// sets of every track are known. onFrame is called for every frame, in
// decode order, starting with a keyframe; DTS and PTS start near zero at
// that first frame. An error from either callback ends Run with that error.
//
// Callbacks run on the Source's goroutine and must not block for long: a
// slow callback stalls the camera connection.
type Source interface {
	Run(ctx context.Context, onTracks func([]media.Track) error, onFrame func(media.Frame) error) error
}

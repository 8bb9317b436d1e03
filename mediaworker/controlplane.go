package mediaworker

import (
	"context"
	"log/slog"
	"time"

	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/recording"
)

// ControlPlane is what the media worker asks of the API.
type ControlPlane interface {
	Authorize(ctx context.Context, token string) (recording.Grant, error)
	Started(ctx context.Context, sessionID string) error
	Segment(ctx context.Context, sessionID string, r recording.SegmentReport) error
	Stopped(ctx context.Context, sessionID string) error
}

// APIClient is the ControlPlane over the API's /internal/v1, with the
// media worker key.
type APIClient struct {
	API    *apiclient.Client
	Worker string // this worker's name, for the API's records
}

// Authorize asks the API to accept a stream token.
func (c *APIClient) Authorize(ctx context.Context, token string) (recording.Grant, error) {
	var g recording.Grant
	err := c.API.Post(ctx, "/internal/v1/sessions/authorize", map[string]string{"token": token, "worker": c.Worker}, &g)
	return g, err
}

// Started reports that the stream is flowing.
func (c *APIClient) Started(ctx context.Context, sessionID string) error {
	return c.API.Post(ctx, "/internal/v1/sessions/"+sessionID+"/started", struct{}{}, nil)
}

// Segment reports an uploaded segment.
func (c *APIClient) Segment(ctx context.Context, sessionID string, r recording.SegmentReport) error {
	return c.API.Post(ctx, "/internal/v1/sessions/"+sessionID+"/segments", r, nil)
}

// Stopped reports that the stream ended.
func (c *APIClient) Stopped(ctx context.Context, sessionID string) error {
	return c.API.Post(ctx, "/internal/v1/sessions/"+sessionID+"/stopped", struct{}{}, nil)
}

// Register announces this worker as an NVR instance reachable at mediaURL.
func (c *APIClient) Register(ctx context.Context, name, mediaURL string, capacity int) error {
	return c.API.Post(ctx, "/internal/v1/nvrs/register",
		map[string]any{"name": name, "media_url": mediaURL, "capacity": capacity}, nil)
}

// KeepRegistered registers the worker again every interval until ctx ends:
// the API stamps the NVR's last_seen_at each time, and moves the channels
// of an NVR that falls silent. A failed beat is logged; the next one tries
// again.
func (c *APIClient) KeepRegistered(ctx context.Context, name, mediaURL string, capacity int, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		beat, cancel := context.WithTimeout(ctx, interval)
		err := c.Register(beat, name, mediaURL, capacity)
		cancel()
		if err != nil && ctx.Err() == nil {
			slog.WarnContext(ctx, "media worker: registration heartbeat failed", "nvr", name, "err", err)
		}
	}
}

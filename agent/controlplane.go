package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/opennvr/vms/apiclient"
)

// ControlPlane resolves and issues stream tokens through the API's
// /internal/v1/agent calls, authenticated with the agent's key. It is the
// agent's Resolver and TokenIssuer.
type ControlPlane struct {
	API *apiclient.Client
}

type resolved struct {
	SessionID string `json:"session_id"`
	ChannelID string `json:"channel_id"`
	Quality   string `json:"quality"`
	WorkerURL string `json:"worker_url"`
	Protocol  string `json:"protocol"`
	CameraURL string `json:"camera_url"`
}

// ResolveStream asks which camera a token is for; the API answers only for
// cameras assigned to this agent.
func (c *ControlPlane) ResolveStream(ctx context.Context, token string) (StreamTarget, error) {
	var r resolved
	if err := c.API.Post(ctx, "/internal/v1/agent/resolve", map[string]string{"token": token}, &r); err != nil {
		var apiErr *apiclient.Error
		if errors.As(err, &apiErr) && apiErr.Permanent() {
			return StreamTarget{}, fmt.Errorf("%w: %s", ErrInvalidToken, apiErr.Message)
		}
		return StreamTarget{}, err
	}
	return StreamTarget{SessionID: r.SessionID, ChannelID: r.ChannelID, Quality: r.Quality,
		WorkerURL: r.WorkerURL, CameraURL: r.CameraURL, Protocol: r.Protocol}, nil
}

// IssueStreamToken gets a fresh token for one of the agent's channels;
// record asks for a token of the channel's continuous recording.
func (c *ControlPlane) IssueStreamToken(ctx context.Context, channelID, quality string, record bool) (string, string, error) {
	var r struct {
		Token     string `json:"token"`
		WorkerURL string `json:"worker_url"`
	}
	req := struct {
		ChannelID string `json:"channel_id"`
		Quality   string `json:"quality"`
		Record    bool   `json:"record,omitempty"`
	}{channelID, quality, record}
	err := c.API.Post(ctx, "/internal/v1/agent/stream-tokens", req, &r)
	var apiErr *apiclient.Error
	if errors.As(err, &apiErr) && apiErr.Permanent() {
		return "", "", &RejectedError{Reason: apiErr.Message}
	}
	return r.Token, r.WorkerURL, err
}

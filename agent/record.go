package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/opennvr/vms/control"
)

// Record streams: a channel's continuous recording, kept alive by the
// channel's supervisor workflow in the cloud through record and stop-record
// commands (see control.TypeRecord).
//
// A record stream differs from an app's stream in three ways:
//
//   - It is known by its channel: at most one runs per channel, and a
//     record command for a channel already pushed at that quality changes
//     nothing (the supervisor re-sends record whenever it is unsure).
//   - The camera is opened before the command is acknowledged, so the
//     supervisor learns at once that the camera is unreachable or refuses
//     the credentials.
//   - A camera failure ends it: the agent does not retry the camera, the
//     supervisor does, with its own backoff, and shows the error. A dropped
//     worker connection is still resumed by the agent, with fresh record
//     tokens from its TokenIssuer.

// recordAckMargin is kept from a record command's deadline for the ack: a
// camera too slow to open yields "did not deliver a stream in time" rather
// than no answer.
const recordAckMargin = 2 * time.Second

// Record makes sure target's channel is pushed at target's quality,
// reporting whether it started a stream. token is the first connection's
// stream token; later connections take record tokens from the TokenIssuer.
//
// A stream of the channel at another quality is stopped first. A new
// stream's camera is opened before Record returns: if it fails, or does not
// deliver its tracks before ctx ends, the stream is dropped and the error
// says why, without credentials.
func (m *Manager) Record(ctx context.Context, target StreamTarget, token string) (started bool, err error) {
	if target.ChannelID == "" || target.SessionID == "" || target.CameraURL == "" || target.WorkerURL == "" || token == "" {
		return false, errors.New("record: incomplete stream target")
	}
	target.Record = true
	log := m.log.With("session", target.SessionID, "channel", target.ChannelID, "quality", target.Quality)
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return false, ErrManagerClosed
		}
		m.pruneLocked(time.Now())
		if cur := m.records[target.ChannelID]; cur != nil && cur.ended.IsZero() {
			m.mu.Unlock()
			if cur.target.Quality != target.Quality {
				log.Info("record quality changed; restarting the stream", "was", cur.target.Quality)
				if err := m.stop(ctx, cur); err != nil {
					return false, fmt.Errorf("stop the %s stream: %w", cur.target.Quality, err)
				}
				continue
			}
			// Recording already, or opening the camera for an earlier
			// command: that one answers for the camera.
			select {
			case <-cur.opened:
				return false, nil
			case <-cur.done:
				continue // it failed meanwhile: try again with this command
			case <-ctx.Done():
				return false, errors.New("camera did not deliver a stream in time")
			}
		}
		src, err := m.cfg.NewSource(target, log)
		if err != nil {
			m.mu.Unlock()
			return false, err
		}
		s := m.launchLocked(target, token, src, log)
		m.records[target.ChannelID] = s
		m.mu.Unlock()

		select {
		case <-s.opened:
			return true, nil
		case <-s.done:
			return false, openError(s.err)
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = m.stop(stopCtx, s)
			cancel()
			return false, errors.New("camera did not deliver a stream in time")
		}
	}
}

// StopRecord stops the channel's record stream, if any, and waits for it
// to close its connections.
func (m *Manager) StopRecord(ctx context.Context, channelID string) error {
	m.mu.Lock()
	s := m.records[channelID]
	m.mu.Unlock()
	if s == nil {
		return nil
	}
	return m.stop(ctx, s)
}

// openError says why a record stream's camera could not be opened.
func openError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return errors.New("the stream was stopped before the camera opened")
	}
	if code := cameraStatus(err); code == http.StatusUnauthorized || code == http.StatusForbidden {
		return fmt.Errorf("camera refused the credentials (%d)", code)
	}
	if _, ok := errors.AsType[*CameraError](err); ok {
		return fmt.Errorf("camera unreachable: %w", err)
	}
	return err
}

// cameraStatus is the status code a camera answered with (RTSP or HTTP),
// zero if err holds none.
func cameraStatus(err error) int {
	if e, ok := errors.AsType[liberrors.ErrClientBadStatusCode](err); ok {
		return int(e.Code)
	}
	if e, ok := errors.AsType[*httpStatusError](err); ok {
		return e.Code
	}
	return 0
}

// httpStatusError is an HTTP camera's answer other than 200 OK.
type httpStatusError struct {
	Code   int
	Status string
}

func (e *httpStatusError) Error() string { return "status " + e.Status }

// record runs a record command.
func (e *Executor) record(ctx context.Context, cmd control.Command) (bool, error) {
	if e.Streams == nil {
		return false, errors.New("this agent does not run record streams")
	}
	if cmd.Camera.StreamURL == "" {
		return false, errors.New("the record command carries no camera stream")
	}
	if cmd.Stream == nil || cmd.Stream.Token == "" || cmd.Stream.SessionID == "" || cmd.Stream.WorkerURL == "" {
		return false, errors.New("the record command carries no stream token")
	}
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-recordAckMargin))
		defer cancel()
	}
	return e.Streams.Record(ctx, StreamTarget{SessionID: cmd.Stream.SessionID, ChannelID: cmd.ChannelID,
		Quality: cmd.Quality, WorkerURL: cmd.Stream.WorkerURL, CameraURL: cmd.Camera.StreamURL,
		Protocol: cmd.Camera.Protocol, Record: true}, cmd.Stream.Token)
}

// Package activities holds the side effects of the NVR's workflows: database
// writes, object checks and signals to other workflows. Activities are
// methods on Activities, which holds their dependencies, so tests swap the
// dependencies (a SQLite store, the embedded S3), not the methods.
//
// Inputs and results are small: ids and times, never media bytes or long
// lists (segment lists live in the database).
package activities

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/store"
)

// DefaultMaxSnapshotBytes bounds a snapshot upload when Activities does not.
const DefaultMaxSnapshotBytes = 10 << 20

// Activities is every activity of the workflows (channel supervisors, clips,
// stream sessions, snapshots, retention).
type Activities struct {
	Store   *store.Store
	Objects *objectstore.Client
	// Temporal signals clip workflows when a segment they wait for is stored.
	Temporal client.Client
	// MaxSnapshotBytes bounds an uploaded snapshot (zero: DefaultMaxSnapshotBytes).
	MaxSnapshotBytes int64
	// NVRStaleAfter is how long an NVR's media worker may be silent before
	// its channels move (zero: recording.NVRStaleAfter).
	NVRStaleAfter time.Duration
}

// Types of the non-retryable errors activities return: the workflow
// branches on them (temporal.ApplicationError.Type), retrying cannot help.
const (
	ErrClipDeleted     = "ClipDeleted"
	ErrChannelDeleted  = "ChannelDeleted"
	ErrChannelInactive = "ChannelInactive"
	ErrSessionDeleted  = "SessionDeleted"
	ErrSnapshotDeleted = "SnapshotDeleted"
	ErrBadInput        = "BadInput"
)

// HasErrorType reports whether err carries an application error of one of
// the given types (through activity and workflow error wrapping).
func HasErrorType(err error, types ...string) bool {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return false
	}
	for _, t := range types {
		if appErr.Type() == t {
			return true
		}
	}
	return false
}

func permanent(errType, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), errType, nil)
}

// parseID reads a UUID argument; a malformed one is a caller bug that
// retrying cannot fix.
func parseID(what, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, permanent(ErrBadInput, "%s id %q is not a UUID", what, s)
	}
	return id, nil
}

// logger is the activity logger inside an activity, slog otherwise (some
// methods are also called directly, e.g. RecordLateSegment by the API).
func logger(ctx context.Context) log.Logger {
	if activity.IsActivity(ctx) {
		return activity.GetLogger(ctx)
	}
	return log.NewStructuredLogger(slog.Default())
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

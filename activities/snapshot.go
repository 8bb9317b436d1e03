package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/store"
)

// Magic numbers of the image formats a snapshot may have.
var (
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	pngMagic  = []byte{0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A}
)

// PresignPutInput asks for an upload URL for Key.
type PresignPutInput struct {
	Key string
	// ContentType, if set, is signed: the uploader must send exactly it.
	ContentType string
	Expiry      time.Duration
}

// PresignSnapshotPut returns a presigned PUT URL for a snapshot object.
func (a *Activities) PresignSnapshotPut(ctx context.Context, in PresignPutInput) (string, error) {
	if in.Key == "" || in.Expiry <= 0 {
		return "", permanent(ErrBadInput, "presign needs a key and a positive expiry")
	}
	return a.Objects.PresignPut(ctx, in.Key, in.ContentType, in.Expiry)
}

// SnapshotCheck is what VerifySnapshot found.
type SnapshotCheck struct {
	OK          bool
	Uploaded    bool   // an object exists under the snapshot's key
	Reason      string // why it is not OK
	ContentType string
	Size        int64
}

// VerifySnapshot checks the uploaded snapshot object: it exists, is not
// larger than the bound, and is a JPEG or PNG by its magic bytes (the
// Content-Type the client sent is not trusted).
func (a *Activities) VerifySnapshot(ctx context.Context, snapshotID string) (SnapshotCheck, error) {
	id, err := parseID("snapshot", snapshotID)
	if err != nil {
		return SnapshotCheck{}, err
	}
	sn, err := a.Store.SnapshotByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return SnapshotCheck{}, permanent(ErrSnapshotDeleted, "snapshot %s was deleted", snapshotID)
	}
	if err != nil {
		return SnapshotCheck{}, fmt.Errorf("read snapshot: %w", err)
	}
	info, err := a.Objects.Head(ctx, sn.Key)
	if errors.Is(err, objectstore.ErrNotFound) {
		return SnapshotCheck{Reason: "nothing was uploaded"}, nil
	}
	if err != nil {
		return SnapshotCheck{}, err
	}
	check := SnapshotCheck{Uploaded: true, Size: info.Size}
	limit := a.MaxSnapshotBytes
	if limit <= 0 {
		limit = DefaultMaxSnapshotBytes
	}
	switch {
	case info.Size == 0:
		check.Reason = "the upload is empty"
		return check, nil
	case info.Size > limit:
		check.Reason = fmt.Sprintf("the upload is %d bytes, more than the %d allowed", info.Size, limit)
		return check, nil
	}
	body, err := a.Objects.GetRange(ctx, sn.Key, 0, int64(len(pngMagic)))
	if err != nil {
		return SnapshotCheck{}, err
	}
	defer body.Close()
	head, err := io.ReadAll(io.LimitReader(body, int64(len(pngMagic))))
	if err != nil {
		return SnapshotCheck{}, fmt.Errorf("read snapshot head: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, jpegMagic):
		check.OK, check.ContentType = true, "image/jpeg"
	case bytes.HasPrefix(head, pngMagic):
		check.OK, check.ContentType = true, "image/png"
	default:
		check.Reason = "the upload is not a JPEG or PNG image"
	}
	return check, nil
}

// SnapshotStatusInput is the outcome a snapshot workflow writes back.
type SnapshotStatusInput struct {
	SnapshotID  string
	Status      string // contract.SnapshotReady, SnapshotFailed or SnapshotExpired
	ContentType string
	Size        int64
	Error       string
}

// SetSnapshotStatus records a snapshot's outcome.
func (a *Activities) SetSnapshotStatus(ctx context.Context, in SnapshotStatusInput) error {
	id, err := parseID("snapshot", in.SnapshotID)
	if err != nil {
		return err
	}
	err = a.Store.UpdateSnapshot(ctx, id, in.Status, in.ContentType, in.Size, in.Error)
	if errors.Is(err, store.ErrNotFound) {
		return permanent(ErrSnapshotDeleted, "snapshot %s was deleted", in.SnapshotID)
	}
	return err
}

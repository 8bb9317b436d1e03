package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/opennvr/vms/workflows/contract"
)

// CreateClip inserts a clip in progress.
func (s *Store) CreateClip(ctx context.Context, c *Clip) error {
	c.ID, c.CreatedAt = newID(), now()
	c.UpdatedAt, c.Status = c.CreatedAt, contract.ClipInProgress
	c.Start, c.End = UTCms(c.Start), UTCms(c.End)
	if _, err := s.DB.NewInsert().Model(c).Exec(ctx); err != nil {
		return fmt.Errorf("insert clip: %w", err)
	}
	return nil
}

// GetClip reads one of the account's clips.
func (s *Store) GetClip(ctx context.Context, accountID, id uuid.UUID) (*Clip, error) {
	c := new(Clip)
	err := s.DB.NewSelect().Model(c).Where("id = ? AND account_id = ?", id, accountID).Scan(ctx)
	return c, notFound(err)
}

// ClipByID reads a clip whatever its account (internal callers only).
func (s *Store) ClipByID(ctx context.Context, id uuid.UUID) (*Clip, error) {
	c := new(Clip)
	err := s.DB.NewSelect().Model(c).Where("id = ?", id).Scan(ctx)
	return c, notFound(err)
}

// ClipUpdate is what a clip workflow writes back.
type ClipUpdate struct {
	Status    string
	Progress  float64
	ObjectKey string
	Error     string
}

// UpdateClip sets a clip's status, progress, object key and error.
func (s *Store) UpdateClip(ctx context.Context, id uuid.UUID, u ClipUpdate) error {
	res, err := s.DB.NewUpdate().Model((*Clip)(nil)).
		Set("status = ?", u.Status).Set("progress = ?", u.Progress).
		Set("object_key = ?", u.ObjectKey).Set("error = ?", u.Error).
		Set("updated_at = ?", now()).
		Where("id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("update clip: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// AppendClipSegments links recordings to a clip; links that exist are kept,
// so a retried append changes nothing. It returns how many were new.
func (s *Store) AppendClipSegments(ctx context.Context, clipID uuid.UUID, recordingIDs []uuid.UUID) (int, error) {
	if len(recordingIDs) == 0 {
		return 0, nil
	}
	rows := make([]ClipSegment, len(recordingIDs))
	t := now()
	for i, id := range recordingIDs {
		rows[i] = ClipSegment{ClipID: clipID, RecordingID: id, CreatedAt: t}
	}
	res, err := s.DB.NewInsert().Model(&rows).On("CONFLICT (clip_id, recording_id) DO NOTHING").Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("append clip segments: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// ClipRecordings lists the recordings appended to a clip, oldest first.
func (s *Store) ClipRecordings(ctx context.Context, clipID uuid.UUID) ([]Recording, error) {
	var out []Recording
	err := s.DB.NewSelect().Model(&out).
		Where("id IN (SELECT recording_id FROM clip_segments WHERE clip_id = ?)", clipID).
		Order("start_time", "id").Scan(ctx)
	return out, err
}

package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/opennvr/vms/recording"
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

// CreateSnapshot inserts a pending snapshot with its object key.
func (s *Store) CreateSnapshot(ctx context.Context, sn *Snapshot) error {
	sn.ID, sn.CreatedAt = newID(), now()
	sn.UpdatedAt, sn.Status = sn.CreatedAt, contract.SnapshotPending
	sn.Key = recording.SnapshotKey(sn.ChannelID, sn.ID)
	if _, err := s.DB.NewInsert().Model(sn).Exec(ctx); err != nil {
		return fmt.Errorf("insert snapshot: %w", err)
	}
	return nil
}

// GetSnapshot reads one of the account's snapshots.
func (s *Store) GetSnapshot(ctx context.Context, accountID, id uuid.UUID) (*Snapshot, error) {
	sn := new(Snapshot)
	err := s.DB.NewSelect().Model(sn).Where("id = ? AND account_id = ?", id, accountID).Scan(ctx)
	return sn, notFound(err)
}

// SnapshotByID reads a snapshot whatever its account (internal callers only).
func (s *Store) SnapshotByID(ctx context.Context, id uuid.UUID) (*Snapshot, error) {
	sn := new(Snapshot)
	err := s.DB.NewSelect().Model(sn).Where("id = ?", id).Scan(ctx)
	return sn, notFound(err)
}

// UpdateSnapshot sets a snapshot's outcome.
func (s *Store) UpdateSnapshot(ctx context.Context, id uuid.UUID, status, contentType string, size int64, errMsg string) error {
	res, err := s.DB.NewUpdate().Model((*Snapshot)(nil)).
		Set("status = ?", status).Set("content_type = ?", contentType).
		Set("size = ?", size).Set("error = ?", errMsg).Set("updated_at = ?", now()).
		Where("id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("update snapshot: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// CreateSession inserts an authorized stream session with the given id (the
// id is minted with the stream token, before the session exists).
func (s *Store) CreateSession(ctx context.Context, ss *StreamSession) error {
	ss.CreatedAt = now()
	if ss.Status == "" {
		ss.Status = contract.SessionAuthorized
	}
	_, err := s.DB.NewInsert().Model(ss).On("CONFLICT (id) DO NOTHING").Exec(ctx)
	if err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	return nil
}

// SessionByID reads a stream session.
func (s *Store) SessionByID(ctx context.Context, id uuid.UUID) (*StreamSession, error) {
	ss := new(StreamSession)
	err := s.DB.NewSelect().Model(ss).Where("id = ?", id).Scan(ctx)
	return ss, notFound(err)
}

// SetSessionStatus moves a session to status at time t, stamping when it
// went live or ended.
func (s *Store) SetSessionStatus(ctx context.Context, id uuid.UUID, status string, t time.Time) error {
	q := s.DB.NewUpdate().Model((*StreamSession)(nil)).Set("status = ?", status).Where("id = ?", id)
	switch status {
	case contract.SessionLive:
		q = q.Set("started_at = ?", UTCms(t))
	case contract.SessionEnded, contract.SessionLost:
		q = q.Set("ended_at = ?", UTCms(t))
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

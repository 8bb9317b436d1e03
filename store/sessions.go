package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/opennvr/vms/workflows/contract"
)

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

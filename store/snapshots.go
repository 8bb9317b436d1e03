package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/workflows/contract"
)

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

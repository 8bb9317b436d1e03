package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// CreateCamera inserts a camera. ID and times are set here.
func (s *Store) CreateCamera(ctx context.Context, c *Camera) error {
	c.ID, c.CreatedAt = newID(), now()
	c.UpdatedAt = c.CreatedAt
	if _, err := s.DB.NewInsert().Model(c).Exec(ctx); err != nil {
		return fmt.Errorf("insert camera: %w", err)
	}
	return nil
}

// GetCamera reads one of the account's cameras.
func (s *Store) GetCamera(ctx context.Context, accountID, id uuid.UUID) (*Camera, error) {
	c := new(Camera)
	err := s.DB.NewSelect().Model(c).Where("id = ? AND account_id = ?", id, accountID).Scan(ctx)
	return c, notFound(err)
}

// ListCameras pages through the account's cameras.
func (s *Store) ListCameras(ctx context.Context, accountID uuid.UUID, p Page) ([]Camera, string, error) {
	p.Limit = p.limit()
	var out []Camera
	q, err := pageByID(s.DB.NewSelect().Model(&out).Where("account_id = ?", accountID), p)
	if err != nil {
		return nil, "", err
	}
	if err := q.Scan(ctx); err != nil {
		return nil, "", err
	}
	out, next := trimPage(out, p.Limit, func(c Camera) uuid.UUID { return c.ID })
	return out, next, nil
}

// UpdateCamera writes every field of c (the caller read it first).
func (s *Store) UpdateCamera(ctx context.Context, c *Camera) error {
	c.UpdatedAt = now()
	res, err := s.DB.NewUpdate().Model(c).WherePK().Where("account_id = ?", c.AccountID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("update camera: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteCamera deletes a camera that has no channels; ErrConflict otherwise.
func (s *Store) DeleteCamera(ctx context.Context, accountID, id uuid.UUID) error {
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		exists, err := tx.NewSelect().Model((*Camera)(nil)).Where("id = ? AND account_id = ?", id, accountID).Exists(ctx)
		if err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		inUse, err := tx.NewSelect().Model((*Channel)(nil)).Where("camera_id = ?", id).Exists(ctx)
		if err != nil {
			return err
		}
		if inUse {
			return ErrConflict
		}
		_, err = tx.NewDelete().Model((*Camera)(nil)).Where("id = ?", id).Exec(ctx)
		return err
	})
}

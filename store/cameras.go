package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// ErrBadCursor: a paging cursor this store did not hand out.
var ErrBadCursor = errors.New("bad cursor")

// Page asks for at most Limit rows after Cursor (empty: from the start).
type Page struct {
	Limit  int
	Cursor string
}

// Page sizes: the default when a caller asks for none, and the most a page holds.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageLimit
	case p.Limit > MaxPageLimit:
		return MaxPageLimit
	}
	return p.Limit
}

// pageByID applies keyset paging over time-ordered (v7) ids.
func pageByID(q *bun.SelectQuery, p Page) (*bun.SelectQuery, error) {
	if p.Cursor != "" {
		id, err := uuid.Parse(p.Cursor)
		if err != nil {
			return nil, ErrBadCursor
		}
		q = q.Where("id > ?", id)
	}
	return q.Order("id").Limit(int64(p.Limit + 1)), nil
}

// trimPage cuts the extra row pageByID fetched and returns the next cursor.
func trimPage[T any](rows []T, limit int, id func(T) uuid.UUID) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, id(rows[limit-1]).String()
}

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

// CreateNVR registers an NVR instance (a media worker).
func (s *Store) CreateNVR(ctx context.Context, n *NVR) error {
	n.ID, n.CreatedAt = newID(), now()
	if n.Status == "" {
		n.Status = NVRActive
	}
	if _, err := s.DB.NewInsert().Model(n).Exec(ctx); err != nil {
		return fmt.Errorf("insert nvr: %w", err)
	}
	return nil
}

// UpsertNVR registers an NVR by name, or updates its URL and capacity: what
// a media worker does each time it starts.
func (s *Store) UpsertNVR(ctx context.Context, n *NVR) error {
	n.ID, n.CreatedAt = newID(), now()
	if n.Status == "" {
		n.Status = NVRActive
	}
	_, err := s.DB.NewInsert().Model(n).
		On("CONFLICT (name) DO UPDATE").
		Set("media_url = EXCLUDED.media_url, capacity = EXCLUDED.capacity").
		Returning("id, status, created_at").Exec(ctx)
	if err != nil {
		return fmt.Errorf("upsert nvr: %w", err)
	}
	return nil
}

// channelCount counts the channels assigned to each NVR.
const channelCount = "(SELECT COUNT(*) FROM channels ch WHERE ch.nvr_id = nvr.id) AS channels"

// ListNVRs lists every NVR instance with its channel count.
func (s *Store) ListNVRs(ctx context.Context) ([]NVR, error) {
	var out []NVR
	err := s.DB.NewSelect().Model(&out).ColumnExpr("nvr.*").ColumnExpr(channelCount).Order("id").Scan(ctx)
	return out, err
}

// GetNVR reads one NVR instance.
func (s *Store) GetNVR(ctx context.Context, id uuid.UUID) (*NVR, error) {
	n := new(NVR)
	err := s.DB.NewSelect().Model(n).ColumnExpr("nvr.*").ColumnExpr(channelCount).Where("id = ?", id).Scan(ctx)
	return n, notFound(err)
}

// CreateChannel inserts a channel on c.NVRID, or, when that is nil, on the
// active NVR with the most free capacity (ErrNoCapacity when none has any).
func (s *Store) CreateChannel(ctx context.Context, c *Channel) error {
	c.ID, c.CreatedAt = newID(), now()
	if c.Status == "" {
		c.Status = ChannelActive
	}
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if s.IsPostgres() {
			// Serialise assignments so two channels do not both take the last slot.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(727002)"); err != nil {
				return err
			}
		}
		if c.NVRID == uuid.Nil {
			var n NVR
			err := tx.NewSelect().Model(&n).ColumnExpr("nvr.*").ColumnExpr(channelCount).
				Where("status = ?", NVRActive).
				Where("(SELECT COUNT(*) FROM channels ch WHERE ch.nvr_id = nvr.id) < capacity").
				OrderExpr("capacity - (SELECT COUNT(*) FROM channels ch WHERE ch.nvr_id = nvr.id) DESC, id").
				Limit(1).Scan(ctx)
			if err != nil {
				if notFound(err) == ErrNotFound {
					return ErrNoCapacity
				}
				return err
			}
			c.NVRID = n.ID
		} else if exists, err := tx.NewSelect().Model((*NVR)(nil)).Where("id = ?", c.NVRID).Exists(ctx); err != nil || !exists {
			if err == nil {
				err = ErrNotFound
			}
			return err
		}
		if _, err := tx.NewInsert().Model(c).Exec(ctx); err != nil {
			return fmt.Errorf("insert channel: %w", err)
		}
		return nil
	})
}

// GetChannel reads one of the account's channels.
func (s *Store) GetChannel(ctx context.Context, accountID, id uuid.UUID) (*Channel, error) {
	c := new(Channel)
	err := s.DB.NewSelect().Model(c).Where("id = ? AND account_id = ?", id, accountID).Scan(ctx)
	return c, notFound(err)
}

// ChannelByID reads a channel whatever its account (internal callers only).
func (s *Store) ChannelByID(ctx context.Context, id uuid.UUID) (*Channel, error) {
	c := new(Channel)
	err := s.DB.NewSelect().Model(c).Where("id = ?", id).Scan(ctx)
	return c, notFound(err)
}

// ListChannels pages through the account's channels.
func (s *Store) ListChannels(ctx context.Context, accountID uuid.UUID, p Page) ([]Channel, string, error) {
	p.Limit = p.limit()
	var out []Channel
	q, err := pageByID(s.DB.NewSelect().Model(&out).Where("account_id = ?", accountID), p)
	if err != nil {
		return nil, "", err
	}
	if err := q.Scan(ctx); err != nil {
		return nil, "", err
	}
	out, next := trimPage(out, p.Limit, func(c Channel) uuid.UUID { return c.ID })
	return out, next, nil
}

// DeleteChannel deletes a channel with its sessions, recordings rows, clips
// and snapshots (foreign keys cascade). Objects in S3 are left to the
// retention sweep.
func (s *Store) DeleteChannel(ctx context.Context, accountID, id uuid.UUID) error {
	res, err := s.DB.NewDelete().Model((*Channel)(nil)).Where("id = ? AND account_id = ?", id, accountID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete channel: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

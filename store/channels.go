package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/opennvr/vms/workflows/contract"
	"github.com/uptrace/bun"
)

// CreateChannel inserts a channel on c.NVRID, or, when that is nil, on the
// active NVR with the most free capacity (ErrNoCapacity when none has any).
func (s *Store) CreateChannel(ctx context.Context, c *Channel) error {
	c.ID, c.CreatedAt = newID(), now()
	if c.Status == "" {
		c.Status = ChannelActive
	}
	if c.Recording == "" {
		c.Recording = contract.RecordingContinuous
	}
	if c.RecordQuality == "" {
		c.RecordQuality = "high"
	}
	c.StateStatus, c.StateSince = contract.StateStarting, &c.CreatedAt
	if c.Recording == contract.RecordingOff {
		c.StateStatus = contract.StateOff
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

// ChannelState is what a channel's supervisor reports.
type ChannelState struct {
	Status    string
	Since     time.Time
	LastError string
	Restarts  int
}

// SetChannelState stores what the channel's supervisor reports
// (ErrNotFound when the channel is gone).
func (s *Store) SetChannelState(ctx context.Context, id uuid.UUID, st ChannelState) error {
	res, err := s.DB.NewUpdate().Model((*Channel)(nil)).Where("id = ?", id).
		Set("state_status = ?", st.Status).Set("state_since = ?", UTCms(st.Since)).
		Set("state_error = ?", st.LastError).Set("state_restarts = ?", st.Restarts).Exec(ctx)
	if err != nil {
		return fmt.Errorf("set channel state: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ChannelStateCounts counts the channels in each recording state, and sums
// their restarts: what /metrics shows.
func (s *Store) ChannelStateCounts(ctx context.Context) (byState map[string]int, restarts int, err error) {
	var rows []struct {
		Status   string `bun:"state_status"`
		N        int    `bun:"n"`
		Restarts int    `bun:"restarts"`
	}
	err = s.DB.NewSelect().Model((*Channel)(nil)).Column("state_status").
		ColumnExpr("COUNT(*) AS n").ColumnExpr("COALESCE(SUM(state_restarts), 0) AS restarts").
		Group("state_status").Scan(ctx, &rows)
	if err != nil {
		return nil, 0, fmt.Errorf("count channel states: %w", err)
	}
	byState = map[string]int{}
	for _, r := range rows {
		byState[r.Status] = r.N
		restarts += r.Restarts
	}
	return byState, restarts, nil
}

// ChannelIDs pages through every channel's id, in id order, after the
// given one (uuid.Nil: from the start).
func (s *Store) ChannelIDs(ctx context.Context, after uuid.UUID, limit int) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := s.DB.NewSelect().Model((*Channel)(nil)).Column("id").Where("id > ?", after).
		OrderExpr("id").Limit(int64(limit)).Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("list channel ids: %w", err)
	}
	return ids, nil
}

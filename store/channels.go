package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/opennvr/vms/workflows/contract"
)

// CreateChannel inserts a channel on c.NVRID, or, when that is nil, on the
// active NVR with the most free capacity (ErrNoCapacity when none has any).
// A channel records continuously at high quality unless c says otherwise.
func (s *Store) CreateChannel(ctx context.Context, c *Channel) error {
	c.ID, c.CreatedAt = newID(), now()
	if c.Status == "" {
		c.Status = ChannelActive
	}
	if c.Recording == "" {
		c.Recording = contract.RecordingContinuous
	}
	if c.RecordQuality == "" {
		c.RecordQuality = contract.RecordQualities[0]
	}
	if c.StateStatus == "" {
		c.StateStatus = contract.StateStarting
		if c.Recording == contract.RecordingOff {
			c.StateStatus = contract.StateOff
		}
		c.StateSince = &c.CreatedAt
	}
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := s.lockPlacement(ctx, tx); err != nil {
			return err
		}
		if c.NVRID == uuid.Nil {
			id, err := placeChannel(ctx, tx, time.Time{})
			if err != nil {
				return err
			}
			c.NVRID = id
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

// lockPlacement serialises channel placements on PostgreSQL, so two
// channels do not both take an NVR's last slot. SQLite transactions are
// serial already.
func (s *Store) lockPlacement(ctx context.Context, tx bun.Tx) error {
	if !s.IsPostgres() {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(727002)")
	return err
}

// placeChannel picks the active NVR with the most free capacity, among
// those whose media worker reported in at or after seenSince unless that
// is zero; ErrNoCapacity when none has a free slot. Run it under
// lockPlacement.
func placeChannel(ctx context.Context, tx bun.Tx, seenSince time.Time) (uuid.UUID, error) {
	var n NVR
	q := tx.NewSelect().Model(&n).Column("id").
		Where("status = ?", NVRActive).
		Where("(SELECT COUNT(*) FROM channels ch WHERE ch.nvr_id = nvr.id) < capacity")
	if !seenSince.IsZero() {
		q = q.Where("last_seen_at >= ?", UTCms(seenSince))
	}
	err := q.OrderExpr("capacity - (SELECT COUNT(*) FROM channels ch WHERE ch.nvr_id = nvr.id) DESC, id").
		Limit(1).Scan(ctx)
	if notFound(err) == ErrNotFound {
		return uuid.Nil, ErrNoCapacity
	}
	return n.ID, err
}

// MoveChannel moves a channel off its NVR when that NVR is draining or its
// media worker has not reported in since staleBefore (or never has), onto
// the healthy NVR (active, seen since staleBefore) with the most free
// capacity. It answers whether the channel moved and the NVR it is on;
// ErrNoCapacity when it must move and no healthy NVR has a free slot,
// ErrNotFound when the channel does not exist.
func (s *Store) MoveChannel(ctx context.Context, channelID uuid.UUID, staleBefore time.Time) (moved bool, nvrID uuid.UUID, err error) {
	// The common case, a healthy NVR, takes one read and no lock: every
	// supervisor asks this on every round.
	healthy := func(db bun.IDB) (bool, error) {
		var cur NVR
		err := db.NewSelect().Model(&cur).
			Where("id = (SELECT nvr_id FROM channels WHERE id = ?)", channelID).Scan(ctx)
		if err != nil {
			return false, notFound(err)
		}
		nvrID = cur.ID
		return cur.Status == NVRActive && cur.LastSeenAt != nil && !cur.LastSeenAt.Before(UTCms(staleBefore)), nil
	}
	if ok, err := healthy(s.DB); err != nil || ok {
		return false, nvrID, err
	}
	err = s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := s.lockPlacement(ctx, tx); err != nil {
			return err
		}
		// Again under the lock: another caller may have moved it meanwhile.
		if ok, err := healthy(tx); err != nil || ok {
			return err
		}
		to, err := placeChannel(ctx, tx, staleBefore)
		if err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model((*Channel)(nil)).Set("nvr_id = ?", to).Where("id = ?", channelID).Exec(ctx); err != nil {
			return fmt.Errorf("move channel: %w", err)
		}
		moved, nvrID = true, to
		return nil
	})
	if err != nil {
		return false, uuid.Nil, err
	}
	return moved, nvrID, nil
}

// lastSegmentEnd selects the end of each channel's newest recording, found
// through recordings_channel_start_idx.
const lastSegmentEnd = `(SELECT r.end_time FROM recordings r WHERE r.channel_id = channel.id
	ORDER BY r.start_time DESC, r.id DESC LIMIT 1) AS last_segment_end`

// GetChannel reads one of the account's channels, with its LastSegmentEnd.
func (s *Store) GetChannel(ctx context.Context, accountID, id uuid.UUID) (*Channel, error) {
	c := new(Channel)
	err := s.DB.NewSelect().Model(c).ColumnExpr("channel.*").ColumnExpr(lastSegmentEnd).
		Where("id = ? AND account_id = ?", id, accountID).Scan(ctx)
	return c, notFound(err)
}

// ChannelByID reads a channel whatever its account (internal callers only).
func (s *Store) ChannelByID(ctx context.Context, id uuid.UUID) (*Channel, error) {
	c := new(Channel)
	err := s.DB.NewSelect().Model(c).Where("id = ?", id).Scan(ctx)
	return c, notFound(err)
}

// UpdateChannel writes the settings a channel's owner may change: its
// recording mode, record quality and retention (the caller read it first).
func (s *Store) UpdateChannel(ctx context.Context, c *Channel) error {
	res, err := s.DB.NewUpdate().Model(c).Column("recording", "record_quality", "retention_days").
		WherePK().Where("account_id = ?", c.AccountID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("update channel: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ListChannels pages through the account's channels, each with its
// LastSegmentEnd.
func (s *Store) ListChannels(ctx context.Context, accountID uuid.UUID, p Page) ([]Channel, string, error) {
	p.Limit = p.limit()
	var out []Channel
	q, err := pageByID(s.DB.NewSelect().Model(&out).ColumnExpr("channel.*").ColumnExpr(lastSegmentEnd).
		Where("account_id = ?", accountID), p)
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

// ChannelIDsOnNVR lists the ids of the channels placed on an NVR.
func (s *Store) ChannelIDsOnNVR(ctx context.Context, nvrID uuid.UUID) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := s.DB.NewSelect().Model((*Channel)(nil)).Column("id").Where("nvr_id = ?", nvrID).OrderExpr("id").Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("list channels of nvr: %w", err)
	}
	return ids, nil
}

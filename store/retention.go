package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// ChannelRetention is what the retention sweep needs of a channel.
type ChannelRetention struct {
	ID            uuid.UUID `bun:"id"`
	RetentionDays int       `bun:"retention_days"`
}

// ChannelsForRetention pages through every channel (all accounts) in id order.
func (s *Store) ChannelsForRetention(ctx context.Context, after uuid.UUID, limit int) ([]ChannelRetention, error) {
	var out []ChannelRetention
	err := s.DB.NewSelect().Model((*Channel)(nil)).Column("id", "retention_days").
		Where("id > ?", after).Order("id").Limit(int64(limit)).Scan(ctx, &out)
	return out, err
}

// ExpiredRecordings returns up to limit recordings of the channel that
// ended before cutoff, oldest first.
func (s *Store) ExpiredRecordings(ctx context.Context, channelID uuid.UUID, cutoff time.Time, limit int) ([]Recording, error) {
	var out []Recording
	err := s.DB.NewSelect().Model(&out).
		Where("channel_id = ?", channelID).Where("end_time < ?", UTCms(cutoff)).
		Order("start_time", "id").Limit(int64(limit)).Scan(ctx)
	return out, err
}

// DeleteRecordings deletes recording rows (and, by cascade, their clip
// links; clips keep their own assembled objects).
func (s *Store) DeleteRecordings(ctx context.Context, ids []uuid.UUID) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := s.DB.NewDelete().Model((*Recording)(nil)).Where("id IN (?)", bun.In(ids)).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete recordings: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

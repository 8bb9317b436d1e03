package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

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
		Returning("id, status, created_at, last_seen_at").Exec(ctx)
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

// TouchNVR stamps the NVR's last_seen_at: its media worker reported in.
func (s *Store) TouchNVR(ctx context.Context, id uuid.UUID) (time.Time, error) {
	at := now()
	res, err := s.DB.NewUpdate().Model((*NVR)(nil)).Set("last_seen_at = ?", at).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return at, fmt.Errorf("touch nvr: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return at, ErrNotFound
	}
	return at, nil
}

// SetNVRStatus makes an NVR active or draining (its channels then move to
// other NVRs) and returns it.
func (s *Store) SetNVRStatus(ctx context.Context, id uuid.UUID, status string) (*NVR, error) {
	res, err := s.DB.NewUpdate().Model((*NVR)(nil)).Set("status = ?", status).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("set nvr status: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrNotFound
	}
	return s.GetNVR(ctx, id)
}

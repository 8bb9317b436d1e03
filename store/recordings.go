package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// AddRecording records a segment. It is idempotent on the S3 key: a
// re-delivered notification returns the row stored the first time, with
// created=false.
func (s *Store) AddRecording(ctx context.Context, r *Recording) (created bool, err error) {
	r.ID, r.CreatedAt = newID(), now()
	r.Start, r.End = UTCms(r.Start), UTCms(r.End)
	res, err := s.DB.NewInsert().Model(r).On("CONFLICT (key) DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("insert recording: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	err = s.DB.NewSelect().Model(r).Where("key = ?", r.Key).Scan(ctx)
	return false, notFound(err)
}

// recordingCursor encodes the position after r in (start, id) order.
func recordingCursor(r Recording) string {
	return base64.RawURLEncoding.EncodeToString([]byte(r.Start.UTC().Format(time.RFC3339Nano) + "|" + r.ID.String()))
}

func parseRecordingCursor(c string) (time.Time, uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(b), "|")
	if !ok {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	t, err1 := time.Parse(time.RFC3339Nano, ts)
	u, err2 := uuid.Parse(id)
	if err1 != nil || err2 != nil {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	return t, u, nil
}

// ListRecordings pages through a channel's recordings overlapping
// [from, to), oldest first.
func (s *Store) ListRecordings(ctx context.Context, channelID uuid.UUID, from, to time.Time, p Page) ([]Recording, string, error) {
	p.Limit = p.limit()
	var out []Recording
	q := s.DB.NewSelect().Model(&out).
		Where("channel_id = ?", channelID).
		Where("start_time < ?", UTCms(to)).
		Where("end_time > ?", UTCms(from))
	if p.Cursor != "" {
		t, id, err := parseRecordingCursor(p.Cursor)
		if err != nil {
			return nil, "", err
		}
		q = q.Where("(start_time > ? OR (start_time = ? AND id > ?))", t, t, id)
	}
	if err := q.Order("start_time", "id").Limit(int64(p.Limit + 1)).Scan(ctx); err != nil {
		return nil, "", err
	}
	if len(out) <= p.Limit {
		return out, "", nil
	}
	out = out[:p.Limit]
	return out, recordingCursor(out[p.Limit-1]), nil
}

// RecordingsBetween returns every recording of the channel overlapping
// [from, to), oldest first (internal callers: clip assembly).
func (s *Store) RecordingsBetween(ctx context.Context, channelID uuid.UUID, from, to time.Time) ([]Recording, error) {
	var out []Recording
	err := s.DB.NewSelect().Model(&out).
		Where("channel_id = ?", channelID).
		Where("start_time < ?", UTCms(to)).
		Where("end_time > ?", UTCms(from)).
		Order("start_time", "id").Scan(ctx)
	return out, err
}

// Span is a stretch of time covered by recordings, or a gap between them.
type Span struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Timeline returns the recorded spans and the gaps of a channel over
// [from, to). Recordings closer than tolerance are one span.
func (s *Store) Timeline(ctx context.Context, channelID uuid.UUID, from, to time.Time, tolerance time.Duration) (spans, gaps []Span, err error) {
	var rows []Recording
	err = s.DB.NewSelect().Model(&rows).Column("start_time", "end_time").
		Where("channel_id = ?", channelID).
		Where("start_time < ?", UTCms(to)).
		Where("end_time > ?", UTCms(from)).
		Order("start_time").Scan(ctx)
	if err != nil {
		return nil, nil, err
	}
	from, to = UTCms(from), UTCms(to)
	for _, r := range rows {
		start, end := maxTime(r.Start, from), minTime(r.End, to)
		if n := len(spans); n > 0 && !start.After(spans[n-1].End.Add(tolerance)) {
			spans[n-1].End = maxTime(spans[n-1].End, end)
			continue
		}
		spans = append(spans, Span{start, end})
	}
	cursor := from
	for _, sp := range spans {
		if sp.Start.After(cursor) {
			gaps = append(gaps, Span{cursor, sp.Start})
		}
		cursor = maxTime(cursor, sp.End)
	}
	if cursor.Before(to) {
		gaps = append(gaps, Span{cursor, to})
	}
	return spans, gaps, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

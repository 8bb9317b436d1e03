package store

import (
	"errors"

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

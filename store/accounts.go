package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/google/uuid"
)

// NewSecret returns a random key with a readable prefix ("vms_", "agt_").
func NewSecret(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// CreateAccount adds an account.
func (s *Store) CreateAccount(ctx context.Context, name string, admin bool) (*Account, error) {
	a := &Account{ID: newID(), Name: name, Admin: admin, CreatedAt: now()}
	if _, err := s.DB.NewInsert().Model(a).Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert account: %w", err)
	}
	return a, nil
}

// AddAPIKey stores the hash of key for the account. The caller chooses the
// key (NewSecret("vms_") or a configured dev key); adding one twice is a no-op.
func (s *Store) AddAPIKey(ctx context.Context, accountID uuid.UUID, name, key string) error {
	k := &APIKey{ID: newID(), AccountID: accountID, Name: name, Hash: HashKey(key), CreatedAt: now()}
	if _, err := s.DB.NewInsert().Model(k).On("CONFLICT (hash) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

// AccountByAPIKey authenticates a public API call.
func (s *Store) AccountByAPIKey(ctx context.Context, key string) (*Account, error) {
	a := new(Account)
	err := s.DB.NewSelect().Model(a).
		Where("id = (SELECT account_id FROM api_keys WHERE hash = ?)", HashKey(key)).
		Scan(ctx)
	return a, notFound(err)
}

package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// CreateAgent registers a local agent for the account and returns it with
// its key (shown once; only the hash is stored).
func (s *Store) CreateAgent(ctx context.Context, accountID uuid.UUID, name string) (*Agent, string, error) {
	key := NewSecret("agt_")
	a, err := s.AddAgent(ctx, accountID, name, key)
	return a, key, err
}

// AddAgent registers an agent with a key the caller chose.
func (s *Store) AddAgent(ctx context.Context, accountID uuid.UUID, name, key string) (*Agent, error) {
	a := &Agent{ID: newID(), AccountID: accountID, Name: name, KeyHash: HashKey(key), CreatedAt: now()}
	if _, err := s.DB.NewInsert().Model(a).Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert agent: %w", err)
	}
	return a, nil
}

// AgentByKey authenticates an agent.
func (s *Store) AgentByKey(ctx context.Context, key string) (*Agent, error) {
	a := new(Agent)
	err := s.DB.NewSelect().Model(a).Where("key_hash = ?", HashKey(key)).Scan(ctx)
	return a, notFound(err)
}

// ListAgents lists an account's agents.
func (s *Store) ListAgents(ctx context.Context, accountID uuid.UUID) ([]Agent, error) {
	var out []Agent
	err := s.DB.NewSelect().Model(&out).Where("account_id = ?", accountID).Order("id").Scan(ctx)
	return out, err
}

// TouchAgent records that the agent was seen now.
func (s *Store) TouchAgent(ctx context.Context, id uuid.UUID) error {
	_, err := s.DB.NewUpdate().Model((*Agent)(nil)).Set("last_seen_at = ?", now()).Where("id = ?", id).Exec(ctx)
	return err
}

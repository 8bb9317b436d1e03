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

// SetAgentOnline records whether an API replica holds the agent's control
// connection, and that the agent was seen now. A replica calls it with true
// on connect and again while the connection lives (so last_seen_at tells a
// stale "online" left by a replica that died), with false on disconnect.
func (s *Store) SetAgentOnline(ctx context.Context, id uuid.UUID, online bool) error {
	_, err := s.DB.NewUpdate().Model((*Agent)(nil)).Set("online = ?", online).Set("last_seen_at = ?", now()).
		Where("id = ?", id).Exec(ctx)
	return err
}

// ChannelIDsByAgent lists the channels whose camera the agent pulls, oldest
// first.
func (s *Store) ChannelIDsByAgent(ctx context.Context, agentID uuid.UUID) ([]uuid.UUID, error) {
	var out []uuid.UUID
	err := s.DB.NewSelect().Model((*Channel)(nil)).Column("channel.id").
		Join("JOIN cameras AS cam ON cam.id = channel.camera_id").
		Where("cam.agent_id = ?", agentID).Order("channel.id").Scan(ctx, &out)
	return out, err
}

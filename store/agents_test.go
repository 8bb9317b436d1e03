package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

func TestAgents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme, other := newAccount(t, s, "acme"), newAccount(t, s, "other")
		agent, key, err := s.CreateAgent(ctx, acme.ID, "office")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(key, "agt_") {
			t.Errorf("agent key %q lacks the agt_ prefix", key)
		}
		otherAgent, err := s.AddAgent(ctx, other.ID, "lab", "agt_chosen")
		if err != nil {
			t.Fatal(err)
		}

		cases := []struct {
			name    string
			key     string
			want    uuid.UUID
			wantErr error
		}{
			{"created key", key, agent.ID, nil},
			{"chosen key", "agt_chosen", otherAgent.ID, nil},
			{"wrong key", key + "x", uuid.Nil, store.ErrNotFound},
			{"api key is no agent key", "vms_chosen", uuid.Nil, store.ErrNotFound},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a, err := s.AgentByKey(ctx, tc.key)
				if err != tc.wantErr {
					t.Fatalf("AgentByKey: err %v, want %v", err, tc.wantErr)
				}
				if err == nil && a.ID != tc.want {
					t.Errorf("AgentByKey = %s, want %s", a.ID, tc.want)
				}
			})
		}

		got, err := s.AgentByKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if got.AccountID != acme.ID || got.Name != "office" || got.LastSeenAt != nil {
			t.Errorf("new agent = %+v, want account %s, name office, never seen", got, acme.ID)
		}
		sameTime(t, "agent created_at", got.CreatedAt, agent.CreatedAt)

		before := time.Now().UTC().Truncate(time.Millisecond)
		if err := s.TouchAgent(ctx, agent.ID); err != nil {
			t.Fatal(err)
		}
		after := time.Now().UTC()
		got, err = s.AgentByKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if got.LastSeenAt == nil {
			t.Fatal("TouchAgent did not set last_seen_at")
		}
		if got.LastSeenAt.Before(before) || got.LastSeenAt.After(after) {
			t.Errorf("last_seen_at = %s, want within [%s, %s]", fmtTime(*got.LastSeenAt), fmtTime(before), fmtTime(after))
		}
		if o, _ := s.AgentByKey(ctx, "agt_chosen"); o.LastSeenAt != nil {
			t.Error("TouchAgent touched another agent")
		}

		list, err := s.ListAgents(ctx, acme.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != agent.ID {
			t.Errorf("ListAgents(acme) = %v, want only %s", ids(list, func(a store.Agent) uuid.UUID { return a.ID }), agent.ID)
		}
	})
}

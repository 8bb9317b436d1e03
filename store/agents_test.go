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
		if err := s.SetAgentOnline(ctx, agent.ID, true); err != nil {
			t.Fatal(err)
		}
		after := time.Now().UTC()
		got, err = s.AgentByKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if got.LastSeenAt == nil {
			t.Fatal("SetAgentOnline did not set last_seen_at")
		}
		if got.LastSeenAt.Before(before) || got.LastSeenAt.After(after) {
			t.Errorf("last_seen_at = %s, want within [%s, %s]", fmtTime(*got.LastSeenAt), fmtTime(before), fmtTime(after))
		}
		if o, _ := s.AgentByKey(ctx, "agt_chosen"); o.LastSeenAt != nil {
			t.Error("SetAgentOnline touched another agent")
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

func TestAgentOnline(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newAccount(t, s, "acme")
		agent := newAgent(t, s, acme.ID, "office")
		other := newAgent(t, s, acme.ID, "warehouse")
		if err := s.SetAgentOnline(ctx, agent.ID, true); err != nil {
			t.Fatal(err)
		}
		read := func(id uuid.UUID) store.Agent {
			t.Helper()
			list, err := s.ListAgents(ctx, acme.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range list {
				if a.ID == id {
					return a
				}
			}
			t.Fatalf("agent %s not listed", id)
			return store.Agent{}
		}
		got := read(agent.ID)
		if !got.Online || got.LastSeenAt == nil {
			t.Fatalf("after SetAgentOnline(true): %+v, want online and seen", got)
		}
		if o := read(other.ID); o.Online || o.LastSeenAt != nil {
			t.Errorf("SetAgentOnline changed another agent: %+v", o)
		}
		seen := *got.LastSeenAt
		time.Sleep(5 * time.Millisecond)
		if err := s.SetAgentOnline(ctx, agent.ID, false); err != nil {
			t.Fatal(err)
		}
		if got = read(agent.ID); got.Online || got.LastSeenAt == nil || !got.LastSeenAt.After(seen) {
			t.Fatalf("after SetAgentOnline(false): %+v, want offline, seen after %s", got, fmtTime(seen))
		}
	})
}

func TestChannelIDsByAgent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newAccount(t, s, "acme")
		nvr := newNVR(t, s, "nvr-1", 10, store.NVRActive)
		agent := newAgent(t, s, acme.ID, "office")
		other := newAgent(t, s, acme.ID, "warehouse")
		camera := func(agentID *uuid.UUID) *store.Camera {
			cam := newCamera(t, s, acme.ID, "cam")
			cam.AgentID = agentID
			if err := s.UpdateCamera(ctx, cam); err != nil {
				t.Fatal(err)
			}
			return cam
		}
		door, yard := camera(&agent.ID), camera(&agent.ID)
		gate, loose := camera(&other.ID), camera(nil)
		want := []uuid.UUID{
			newChannel(t, s, acme.ID, door.ID, nvr.ID).ID,
			newChannel(t, s, acme.ID, yard.ID, nvr.ID).ID,
			newChannel(t, s, acme.ID, door.ID, nvr.ID).ID,
		}
		newChannel(t, s, acme.ID, gate.ID, nvr.ID)
		newChannel(t, s, acme.ID, loose.ID, nvr.ID)

		got, err := s.ChannelIDsByAgent(ctx, agent.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !equalIDs(got, want) {
			t.Errorf("ChannelIDsByAgent = %v, want %v", got, want)
		}
		if got, err := s.ChannelIDsByAgent(ctx, uuid.New()); err != nil || len(got) != 0 {
			t.Errorf("an unknown agent: %v, %v; want none", got, err)
		}
	})
}

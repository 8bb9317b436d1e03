package storetest

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
)

// World is one account with an agent, its camera and a channel on an NVR: the rows a
// test of recordings, clips, snapshots or streams starts from.
type World struct {
	Account *store.Account
	Agent   *store.Agent
	Camera  *store.Camera
	NVR     *store.NVR
	Channel *store.Channel
}

// NewWorld creates a World in s whose channel keeps recordings 7 days.
func NewWorld(tb testing.TB, s *store.Store) *World {
	tb.Helper()
	return NewWorldRetaining(tb, s, 7)
}

// NewWorldRetaining creates a World in s whose channel keeps recordings
// the given number of days.
func NewWorldRetaining(tb testing.TB, s *store.Store, retentionDays int) *World {
	tb.Helper()
	ctx := context.Background()
	acct, err := s.CreateAccount(ctx, "acme", false)
	if err != nil {
		tb.Fatal(err)
	}
	agent, _, err := s.CreateAgent(ctx, acct.ID, "lan")
	if err != nil {
		tb.Fatal(err)
	}
	// Loopback: nothing a test starts may dial outside this machine.
	cam := &store.Camera{AccountID: acct.ID, AgentID: &agent.ID, Name: "door", Protocol: store.ProtocolRTSP,
		Host: "127.0.0.1", Port: 554, StreamHigh: "/main"}
	if err := s.CreateCamera(ctx, cam); err != nil {
		tb.Fatal(err)
	}
	// NVR names are unique: a test may build several worlds in one store.
	nvr := &store.NVR{Name: "nvr-" + uuid.NewString()[:8], MediaURL: "ws://127.0.0.1:8082/v1/ingest", Capacity: 100}
	if err := s.CreateNVR(ctx, nvr); err != nil {
		tb.Fatal(err)
	}
	ch := &store.Channel{AccountID: acct.ID, CameraID: cam.ID, NVRID: nvr.ID, RetentionDays: retentionDays}
	if err := s.CreateChannel(ctx, ch); err != nil {
		tb.Fatal(err)
	}
	return &World{Account: acct, Agent: agent, Camera: cam, NVR: nvr, Channel: ch}
}

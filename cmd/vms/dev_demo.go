package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/opennvr/vms/config"
	"github.com/opennvr/vms/democam"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows"
	"github.com/opennvr/vms/workflows/contract"
	"go.temporal.io/sdk/client"
)

const (
	demoAddr       = "127.0.0.1:8554"
	demoPath       = "demo"
	demoCameraName = "demo camera"
)

// demoSample finds testdata/demo.h264 from the working folder or beside the
// binary (bin/vms in a checkout).
func demoSample() (string, error) {
	candidates := []string{filepath.Join("testdata", "demo.h264")}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "..", "testdata", "demo.h264"))
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", errors.New("testdata/demo.h264 not found: run vms dev --demo from the project folder")
}

// startDemo runs the built-in RTSP camera and registers it with a channel
// on the dev account (once). The channel records by itself: its supervisor
// has the in-process agent pull the camera, as for any other channel.
func startDemo(ctx context.Context, st *store.Store, tc client.Client, cfg config.Config, secrets devSecrets) (*democam.Camera, error) {
	sample, err := demoSample()
	if err != nil {
		return nil, err
	}
	cam, err := democam.Start(ctx, demoAddr, demoPath, sample)
	if err != nil {
		return nil, err
	}
	ch, err := demoChannel(ctx, st, cfg, secrets)
	if err == nil {
		// The workflow worker's start pass may have run before the channel
		// existed.
		err = workflows.StartChannelSupervisor(ctx, tc, contract.TaskQueue, ch.ID.String())
	}
	if err != nil {
		cam.Close()
		return nil, fmt.Errorf("demo channel: %w", err)
	}
	slog.Info("demo camera recording", "camera", cam.URL(), "channel", ch.ID)
	return cam, nil
}

// demoChannel returns the dev account's demo channel, creating the camera
// and channel on the first run.
func demoChannel(ctx context.Context, st *store.Store, cfg config.Config, secrets devSecrets) (*store.Channel, error) {
	acct, err := st.AccountByAPIKey(ctx, cfg.DevAPIKey)
	if err != nil {
		return nil, err
	}
	ag, err := st.AgentByKey(ctx, secrets.AgentKey)
	if err != nil {
		return nil, err
	}
	chans, _, err := st.ListChannels(ctx, acct.ID, store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		return nil, err
	}
	for i := range chans {
		cam, err := st.GetCamera(ctx, acct.ID, chans[i].CameraID)
		if err == nil && cam.Name == demoCameraName {
			return &chans[i], nil
		}
	}
	cam := &store.Camera{AccountID: acct.ID, AgentID: &ag.ID, Name: demoCameraName, Protocol: store.ProtocolRTSP,
		Host: "127.0.0.1", Port: 8554, StreamHigh: "/" + demoPath}
	if err := st.CreateCamera(ctx, cam); err != nil {
		return nil, err
	}
	ch := &store.Channel{AccountID: acct.ID, CameraID: cam.ID, RetentionDays: 7}
	if err := st.CreateChannel(ctx, ch); err != nil {
		return nil, err
	}
	return ch, nil
}

package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/opennvr/vms/agent"
	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/config"
)

func agentCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "agent",
		Short: "Run the local agent: pulls cameras on the LAN and pushes them to media workers",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load()
			if err != nil {
				return err
			}
			if cfg.AgentKey == "" {
				return errors.New("VMS_AGENT_KEY must be set (vms account create prints one)")
			}
			m := newAgent(cfg)
			defer m.Close()
			agentControl, err := newAgentControl(cfg, m)
			if err != nil {
				return err
			}
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return ignoreCanceled(agentControl.Run(ctx)) })
			g.Go(func() error { return serveHTTP(ctx, "agent", cfg.AgentAddr, agent.NewHandler(m, slog.Default()), nil) })
			return g.Wait()
		},
	}
}

// newAgent builds the local agent's stream manager against the API.
func newAgent(cfg config.Config) *agent.Manager {
	cp := &agent.ControlPlane{API: agentAPI(cfg)}
	return agent.NewManager(agent.ManagerConfig{Resolver: cp, Tokens: cp})
}

// newAgentControl builds the local agent's control channel to the API
// (PTZ and snapshot commands; record commands run their streams on m).
func newAgentControl(cfg config.Config, m *agent.Manager) (*agent.ControlClient, error) {
	u, err := agent.ControlURL(cfg.APIURL)
	if err != nil {
		return nil, fmt.Errorf("VMS_API_URL: %w", err)
	}
	return &agent.ControlClient{URL: u, Key: cfg.AgentKey, Commands: &agent.Executor{Streams: m}}, nil
}

func agentAPI(cfg config.Config) *apiclient.Client {
	return &apiclient.Client{BaseURL: cfg.APIURL, Key: cfg.AgentKey}
}

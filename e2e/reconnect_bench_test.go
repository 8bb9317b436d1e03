package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/opennvr/vms/agent"
	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/control"
	"github.com/opennvr/vms/democam"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows/contract"
)

// BenchmarkAgentReconnect: one agent records N channels (VMS_BENCH_CHANNELS,
// default 500) by itself, each channel's supervisor keeping its stream
// alive; the agent then goes away as a restarted agent process does (its
// control channel and every stream end), every supervisor shows
// agent_offline, and the agent comes back. Measured: the time from the
// reconnect until each channel is recording again, the agent's peak number
// of commands in flight, and the channels that showed retrying or fell back
// to agent_offline on the way.
//
//	go test ./e2e/ -run '^$' -bench AgentReconnect -benchtime 1x -timeout 30m
//
// Everything is on loopback: the control plane (SQLite, Temporal dev
// server, embedded S3, API), one media worker in this process, the agent
// and ONE democam RTSP camera that all N cameras point at (the agent opens
// one RTSP session per channel). Segments are VMS_BENCH_SEGMENT long
// (default 60 s) to keep the upload and report load off the measurement.
// VMS_BENCH_DB=postgres runs the store on PostgreSQL (127.0.0.1:5432)
// instead of SQLite, as a fleet of this size would.
func BenchmarkAgentReconnect(b *testing.B) {
	n := envInts(b, "VMS_BENCH_CHANNELS", "500")[0]
	segment := envDuration(b, "VMS_BENCH_SEGMENT", time.Minute)
	within := envDuration(b, "VMS_BENCH_WITHIN", 5*time.Minute)
	ctx := context.Background()

	e := newEnv(b, envConfig{SegmentLength: segment, DB: os.Getenv("VMS_BENCH_DB")})
	startWorker(b, workerConfig{Name: "nvr-1", Addr: "127.0.0.1:0", DataDir: b.TempDir(),
		APIURL: e.apiURL, WorkerKey: e.workerKey, Segment: segment}, e.objects)
	cam, err := democam.Start(ctx, "127.0.0.1:0", "cam", demoSample)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cam.Close)

	// The agent first, so that channels start recording as they are added.
	ag := startFleetAgent(b, e)
	added := time.Now()
	var g errgroup.Group
	g.SetLimit(8)
	for range n {
		g.Go(func() error {
			_, err := e.tryAddChannel(camera{Protocol: store.ProtocolRTSP, URL: cam.URL()})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d channels added in %s", n, time.Since(added).Round(100*time.Millisecond))
	first := watchStates(b, e, added, within)
	b.Logf("first start: %s; agent commands: %d, peak in flight %d, median %s at the agent",
		first, ag.commands.total.Load(), ag.commands.peak.Load(), ag.commands.median().Round(time.Millisecond))

	b.ResetTimer()
	for range b.N {
		ag.stop()
		gone := time.Now()
		waitAllStates(b, e, contract.StateAgentOffline, 3*time.Minute)
		b.Logf("all %d channels agent_offline %s after the agent went away", n, time.Since(gone).Round(100*time.Millisecond))

		ag = startFleetAgent(b, e)
		back := watchStates(b, e, ag.started, within)
		b.Logf("after the reconnect: %s; agent commands: %d, peak in flight %d, median %s at the agent; %d channels answered busy",
			back, ag.commands.total.Load(), ag.commands.peak.Load(), ag.commands.median().Round(time.Millisecond), back.busy)
		if back.recording < n {
			b.Fatalf("only %d of %d channels recording %s after the reconnect", back.recording, n, within)
		}
		b.ReportMetric(back.p(0.50).Seconds(), "p50-s")
		b.ReportMetric(back.p(0.99).Seconds(), "p99-s")
		b.ReportMetric(back.all.Seconds(), "all-s")
		b.ReportMetric(float64(ag.commands.peak.Load()), "peak-inflight")
		b.ReportMetric(float64(back.retrying), "retrying")
		b.ReportMetric(float64(back.offlineAgain), "offline-again")
	}
}

// fleetAgent is an agent as `vms agent` runs it: a stream manager and its
// control channel, with its commands counted.
type fleetAgent struct {
	m        *agent.Manager
	commands *countingCommander
	started  time.Time
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
}

func startFleetAgent(tb testing.TB, e *env) *fleetAgent {
	tb.Helper()
	cp := &agent.ControlPlane{API: &apiclient.Client{BaseURL: e.apiURL, Key: e.agentKey}}
	m := agent.NewManager(agent.ManagerConfig{Resolver: cp, Tokens: cp})
	u, err := agent.ControlURL(e.apiURL)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &fleetAgent{m: m, commands: &countingCommander{next: &agent.Executor{Streams: m}},
		started: time.Now(), cancel: cancel, done: make(chan struct{})}
	cc := &agent.ControlClient{URL: u, Key: e.agentKey, Commands: a.commands}
	go func() { defer close(a.done); _ = cc.Run(ctx) }()
	tb.Cleanup(a.stop)
	return a
}

// stop ends the control channel and every stream, as the agent's process
// exiting would.
func (a *fleetAgent) stop() {
	a.once.Do(func() {
		a.cancel()
		<-a.done
		a.m.Close()
	})
}

// countingCommander counts the commands the agent runs, the most it ran
// at once and how long each took.
type countingCommander struct {
	next            agent.Commander
	inFlight, total atomic.Int64
	peak            atomic.Int64

	mu   sync.Mutex
	took []time.Duration
}

func (c *countingCommander) Execute(ctx context.Context, cmd control.Command) (control.Ack, error) {
	c.total.Add(1)
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	start := time.Now()
	defer func() {
		c.mu.Lock()
		c.took = append(c.took, time.Since(start))
		c.mu.Unlock()
	}()
	return c.next.Execute(ctx, cmd)
}

// median is the median time a command took at the agent.
func (c *countingCommander) median() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.took) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(c.took))
	return s[len(s)/2]
}

// statesSeen is what watchStates saw of the channels' states.
type statesSeen struct {
	n, recording int
	took         []time.Duration // from the start until each channel first showed recording
	all          time.Duration   // until every channel did
	retrying     int             // channels that showed retrying
	offlineAgain int             // channels that went back to agent_offline after starting
	busy         int             // channels whose error said the agent was busy
	errors       map[string]int  // distinct errors of retrying channels
}

func (s statesSeen) p(q float64) time.Duration {
	if len(s.took) == 0 {
		return 0
	}
	return s.took[min(len(s.took)-1, int(q*float64(len(s.took))))]
}

func (s statesSeen) String() string {
	errs := ""
	for _, k := range slices.Sorted(maps.Keys(s.errors)) {
		errs += fmt.Sprintf("; %d× %q", s.errors[k], k)
	}
	return fmt.Sprintf("%d/%d recording, p50 %s, p99 %s, all %s; %d showed retrying, %d went back to agent_offline%s",
		s.recording, s.n, s.p(0.5).Round(10*time.Millisecond), s.p(0.99).Round(10*time.Millisecond),
		s.all.Round(10*time.Millisecond), s.retrying, s.offlineAgain, errs)
}

type channelRow struct {
	ID     string `bun:"id"`
	Status string `bun:"state_status"`
	Error  string `bun:"state_error"`
}

func channelStates(tb testing.TB, e *env) []channelRow {
	tb.Helper()
	var rows []channelRow
	err := e.st.DB.NewSelect().Model((*store.Channel)(nil)).Column("id", "state_status", "state_error").
		Scan(context.Background(), &rows)
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}

// watchStates polls every channel's stored state every 100 ms until all
// are recording or within passes, noting when each first was recording
// and what else it showed on the way.
func watchStates(tb testing.TB, e *env, from time.Time, within time.Duration) statesSeen {
	tb.Helper()
	seen := statesSeen{errors: map[string]int{}}
	prev := map[string]string{}
	recorded := map[string]bool{}
	retried := map[string]bool{}
	for deadline := from.Add(within); ; time.Sleep(100 * time.Millisecond) {
		rows := channelStates(tb, e)
		now := time.Now()
		seen.n = len(rows)
		for _, r := range rows {
			switch r.Status {
			case contract.StateRecording:
				if !recorded[r.ID] {
					recorded[r.ID] = true
					seen.took = append(seen.took, now.Sub(from))
				}
			case contract.StateRetrying:
				if !retried[r.ID] {
					retried[r.ID] = true
					seen.retrying++
					seen.errors[r.Error]++
					if strings.Contains(r.Error, "busy") {
						seen.busy++
					}
				}
			case contract.StateAgentOffline:
				if p := prev[r.ID]; p != "" && p != contract.StateAgentOffline {
					seen.offlineAgain++
				}
			}
			prev[r.ID] = r.Status
		}
		seen.recording = len(recorded)
		if seen.recording == seen.n || now.After(deadline) {
			seen.all = now.Sub(from)
			sort.Slice(seen.took, func(i, j int) bool { return seen.took[i] < seen.took[j] })
			return seen
		}
	}
}

// waitAllStates waits until every channel's stored state is status.
func waitAllStates(tb testing.TB, e *env, status string, within time.Duration) {
	tb.Helper()
	waitFor(tb, "every channel "+status, within, func() bool {
		for _, r := range channelStates(tb, e) {
			if r.Status != status {
				return false
			}
		}
		return true
	})
}

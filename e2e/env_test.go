package e2e_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/agent"
	"github.com/opennvr/vms/api"
	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
	"github.com/opennvr/vms/streamtoken"
	"github.com/opennvr/vms/temporaltest"
	"github.com/opennvr/vms/workflows"
)

const (
	demoSample = "../testdata/demo.h264"
	// demoGOP is the keyframe interval of demoSample.
	demoGOP = 2 * time.Second
	// segmentLength is the target segment length of these tests: short, so
	// a test sees several segments in seconds (two demo GOPs each).
	segmentLength = 4 * time.Second
	// clipGrace bounds how long past its end a clip waits for segments.
	clipGrace = 20 * time.Second
	// waitLong bounds any single wait of a test for the system to act.
	waitLong = 90 * time.Second
)

// env is one control plane: a SQLite store, S3, the Temporal dev server
// with a workflow worker on contract.TaskQueue (the queue the API starts
// workflows on), and the REST API on 127.0.0.1. It holds one account with
// an API key and one agent.
type env struct {
	st        *store.Store
	dbPath    string // the SQLite file
	objects   *objectstore.Client
	s3        objectstore.Config
	tc        client.Client
	temporal  string // the dev server's host:port
	api       *apiReplica
	apiURL    string
	apiKey    string
	agentKey  string
	workerKey string
	opts      api.Options
	// workflows is the workflow worker child's config and startedWorkflows
	// the child newEnv started (ChildWorkflows).
	workflows        workflowsConfig
	startedWorkflows *childProcess
}

type envConfig struct {
	// Objects is the S3 to use, S3 its config; nil means a fresh bucket on
	// the test binary's shared embedded S3 server.
	Objects *objectstore.Client
	S3      objectstore.Config
	// ChildWorkflows runs the workflow worker in a child process
	// (env.workflows), which a test may kill; otherwise in this one.
	ChildWorkflows bool
	// DB is the store: "sqlite" (the default, a file the child workflow
	// worker can share) or "postgres" (a fresh database on 127.0.0.1:5432,
	// see storetest; not with ChildWorkflows).
	DB string
	// SegmentLength is the API's target segment length (session liveness);
	// zero means segmentLength.
	SegmentLength time.Duration
}

const tokenSecret = "e2e-stream-token-secret-0123456789abcdef"

func newEnv(tb testing.TB, cfg envConfig) *env {
	tb.Helper()
	if testing.Short() {
		tb.Skip("end-to-end: skipped in -short mode")
	}
	ctx := context.Background()
	e := &env{objects: cfg.Objects, s3: cfg.S3,
		apiKey: store.NewSecret("vms_"), agentKey: store.NewSecret("agt_"), workerKey: store.NewSecret("wrk_")}
	var err error
	if cfg.DB == "postgres" {
		if cfg.ChildWorkflows {
			tb.Fatal("e2e: a child workflow worker shares only a SQLite file")
		}
		e.st = storetest.Open(tb, "postgres")
	} else {
		e.dbPath = filepath.Join(tb.TempDir(), "vms.db")
		if e.st, err = store.Open(ctx, e.dbPath); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { e.st.Close() })
		if err := e.st.Migrate(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	if e.objects == nil {
		e.objects, e.s3 = s3test.Start(tb)
	}
	acct, err := e.st.CreateAccount(ctx, "e2e", true)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.st.AddAPIKey(ctx, acct.ID, "e2e key", e.apiKey); err != nil {
		tb.Fatal(err)
	}
	if _, err := e.st.AddAgent(ctx, acct.ID, "e2e agent", e.agentKey); err != nil {
		tb.Fatal(err)
	}
	tokens, err := streamtoken.NewSigner(tokenSecret)
	if err != nil {
		tb.Fatal(err)
	}

	e.tc, e.temporal = temporaltest.Start(tb)
	// A task queue of this test's own, which the API starts workflows on:
	// workflows a test leaves running never reach a later test's worker.
	acts := &activities.Activities{Store: e.st, Objects: e.objects, Temporal: e.tc}
	var tq string
	if cfg.ChildWorkflows {
		tq = temporaltest.TaskQueue(tb)
		e.workflows = workflowsConfig{DB: e.dbPath, Temporal: e.temporal, TaskQueue: tq, S3: e.s3}
		e.startedWorkflows = e.startWorkflowsProcess(tb)
	} else {
		tq = temporaltest.Worker(tb, e.tc, func(r worker.Registry) { workflows.Register(r, acts) })
	}

	e.opts = api.Options{
		Store: e.st, Objects: e.objects, Temporal: e.tc, TaskQueue: tq, Tokens: tokens, Recorder: acts, WorkerKey: e.workerKey,
		SegmentLength: cmp.Or(cfg.SegmentLength, segmentLength), ClipGrace: clipGrace,
	}
	e.api = startReplica(tb, e.opts, "127.0.0.1:0")
	e.apiURL = e.api.url()
	return e
}

// serveAPI serves an API with opts on 127.0.0.1 and returns its base URL.
func (e *env) serveAPI(tb testing.TB, opts api.Options) string {
	return startReplica(tb, opts, "127.0.0.1:0").url()
}

// startWorkflowsProcess starts the env's workflow worker child.
func (e *env) startWorkflowsProcess(tb testing.TB) *childProcess {
	tb.Helper()
	return startChild(tb, envWorkflowsChild, e.workflows)
}

// apiReplica is an API server on an address of its own, which a test may
// stop and start again on that address (a replica restarted).
type apiReplica struct {
	addr string
	opts api.Options
	srv  *api.Server
	hs   *http.Server
	done chan struct{}
}

// startReplica serves an API with opts on addr until the test ends.
func startReplica(tb testing.TB, opts api.Options, addr string) *apiReplica {
	tb.Helper()
	r := &apiReplica{addr: addr, opts: opts}
	r.start(tb)
	tb.Cleanup(r.stop)
	return r
}

func (r *apiReplica) url() string { return "http://" + r.addr }

// start serves the API on the replica's address.
func (r *apiReplica) start(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		tb.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.srv = api.New(r.opts)
	r.hs = &http.Server{Handler: r.srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		_ = r.hs.Serve(ln)
	}()
}

// stop ends the replica at once, as a crash would: every connection drops,
// agents' control channels included.
func (r *apiReplica) stop() {
	if r.hs == nil {
		return
	}
	_ = r.hs.Close()
	r.srv.Close()
	<-r.done
	r.hs = nil
}

// call sends a JSON request to the public API with the account's key and
// decodes the answer into out; any status but want fails the test.
func (e *env) call(tb testing.TB, method, path string, body any, want int, out any) {
	tb.Helper()
	if err := e.try(e.apiURL, method, path, body, want, out); err != nil {
		tb.Fatal(err)
	}
}

// try is call against the API at base, returning the failure.
func (e *env) try(base, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode %q: %w", method, path, raw, err)
		}
	}
	return nil
}

// camera is what a test registers through POST /v1/cameras.
type camera struct {
	Protocol string // rtsp or mjpeg
	URL      string // the democam's URL: host, port and path are taken from it
}

// addChannel registers cam (assigned to the account's only agent) and a
// channel for it on the NVR with the most room, and returns the channel id.
func (e *env) addChannel(tb testing.TB, cam camera) string {
	tb.Helper()
	id, err := e.tryAddChannel(cam)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// tryAddChannel is addChannel returning the failure (safe from any goroutine).
func (e *env) tryAddChannel(cam camera) (string, error) {
	u, err := url.Parse(cam.URL)
	if err != nil {
		return "", err
	}
	port, _ := strconv.Atoi(u.Port())
	streams := map[string]string{"high": u.Path}
	if cam.Protocol == store.ProtocolMJPEG {
		streams = map[string]string{"mjpeg": u.Path}
	}
	var c struct{ ID string }
	err = e.try(e.apiURL, http.MethodPost, "/v1/cameras", map[string]any{
		"name": "e2e " + cam.Protocol, "protocol": cam.Protocol, "host": u.Hostname(), "port": port, "streams": streams,
	}, http.StatusCreated, &c)
	if err != nil {
		return "", err
	}
	var ch struct{ ID string }
	err = e.try(e.apiURL, http.MethodPost, "/v1/channels", map[string]any{"camera_id": c.ID}, http.StatusCreated, &ch)
	return ch.ID, err
}

type tokenView struct {
	Token     string    `json:"token"`
	SessionID string    `json:"session_id"`
	WorkerURL string    `json:"worker_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// streamToken asks the API at base (the env's if empty) for a stream token
// of the channel.
func (e *env) streamToken(tb testing.TB, base, channelID, quality string) tokenView {
	tb.Helper()
	if base == "" {
		base = e.apiURL
	}
	var tv tokenView
	err := e.try(base, http.MethodPost, "/v1/channels/"+channelID+"/stream-tokens", map[string]string{"quality": quality}, http.StatusCreated, &tv)
	if err != nil {
		tb.Fatal(err)
	}
	return tv
}

// startAgent runs a local agent (as `vms agent` builds it) until the test
// ends and has it push the channel's stream.
func (e *env) startAgent(tb testing.TB, channelID, quality string) *agent.Manager {
	tb.Helper()
	cp := &agent.ControlPlane{API: &apiclient.Client{BaseURL: e.apiURL, Key: e.agentKey}}
	m := agent.NewManager(agent.ManagerConfig{Resolver: cp, Tokens: cp})
	tb.Cleanup(m.Close)
	tv := e.streamToken(tb, "", channelID, quality)
	if _, err := m.Start(context.Background(), tv.Token, ""); err != nil {
		tb.Fatalf("agent start: %v", err)
	}
	return m
}

// recordingItem is an item of GET /v1/channels/{id}/recordings.
type recordingItem struct {
	ID         string    `json:"id"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	DurationMS int64     `json:"duration_ms"`
	Size       int64     `json:"size"`
	Codec      string    `json:"codec"`
	URL        string    `json:"url"`
}

// recordings lists every recording of the channel in the last hour, oldest
// first, following the cursor.
func (e *env) recordings(tb testing.TB, channelID string) []recordingItem {
	tb.Helper()
	q := url.Values{"from": {time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
		"to": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "limit": {"50"}}
	var all []recordingItem
	for {
		var page struct {
			Items      []recordingItem `json:"items"`
			NextCursor string          `json:"next_cursor"`
		}
		e.call(tb, http.MethodGet, "/v1/channels/"+channelID+"/recordings?"+q.Encode(), nil, http.StatusOK, &page)
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	slices.SortFunc(all, func(a, b recordingItem) int { return a.Start.Compare(b.Start) })
	return all
}

// hasKey tells whether a recording's presigned URL is for the object key.
func (r recordingItem) hasKey(key string) bool {
	u, err := url.Parse(r.URL)
	return err == nil && strings.HasSuffix(u.Path, "/"+key)
}

// waitFor polls cond every interval until it holds or within passes.
func waitFor(tb testing.TB, what string, within time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// download fetches a presigned URL into a file in the test's temp folder.
func download(tb testing.TB, rawURL, name string) string {
	tb.Helper()
	path := tb.TempDir() + "/" + name
	if err := os.WriteFile(path, s3test.Download(tb, rawURL), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// freeAddr returns a 127.0.0.1 address with a port free right now, for a
// server that must come back on the same address after a restart.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

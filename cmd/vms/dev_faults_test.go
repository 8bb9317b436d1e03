//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/opennvr/vms/democam"
	"github.com/opennvr/vms/temporaltest"
	"github.com/opennvr/vms/workflows/contract"
)

// TestDevRestartRecording: the whole `vms dev` stopped with SIGTERM, then
// killed with SIGKILL, each time started again on the same data folder: a
// channel (a democam on 127.0.0.1, created through the API, recording by
// itself) records again with nobody asking, and no recording overlaps
// another. The figures (logged as "fault matrix | ...") are
// docs/benchmarks.md's fault matrix.
func TestDevRestartRecording(t *testing.T) {
	r := startRecordingDev(t, "")
	for _, stop := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGKILL", syscall.SIGKILL}} {
		t.Run(stop.name, func(t *testing.T) {
			at := time.Now()
			if err := syscall.Kill(r.p.proc.Pid(), stop.sig); err != nil {
				t.Fatal(err)
			}
			waitExit(t, r.p, 30*time.Second)
			// Started on the whole test: it outlives this subtest.
			r.p = r.d.start(r.t)
			r.d.waitHealthy(t, r.p)
			if gaps := r.measure(t, "vms dev "+stop.name+", started again", at, time.Now()); gaps == 0 {
				t.Errorf("no gap in the timeline across a %s restart", stop.name)
			}
		})
	}
}

// envPostgresRestart runs TestDevPostgresRestart (it needs initdb and
// pg_ctl, and the postgres user when run as root).
const envPostgresRestart = "VMS_E2E_POSTGRES_RESTART"

// TestDevPostgresRestart: vms dev on a PostgreSQL of the test's own (a
// private instance on a free port, never the shared one), which stops as a
// crash would (immediate mode) for a few seconds and starts again:
// recording goes on by itself.
func TestDevPostgresRestart(t *testing.T) {
	if os.Getenv(envPostgresRestart) == "" {
		t.Skip(envPostgresRestart + "=1 runs it (a private PostgreSQL instance)")
	}
	pg := startPrivatePostgres(t)
	r := startRecordingDev(t, pg.dsn)
	at := time.Now()
	pg.ctl(t, "stop", "-m", "immediate")
	time.Sleep(5 * time.Second)
	pg.ctl(t, "start")
	if gaps := r.measure(t, "PostgreSQL down 5 s", at, time.Now()); gaps != 0 {
		t.Errorf("%d gaps in the timeline across a PostgreSQL restart, want none", gaps)
	}
}

// recordingDev is a vms dev with a channel recording by itself.
type recordingDev struct {
	t     *testing.T
	d     *devProcs
	p     *devProc
	c     devClient
	ch    string
	since time.Time // the end of the last measure: later gaps are the next fault's
}

// startRecordingDev runs vms dev (on the database at dsn, or its SQLite
// file if empty) with 4 s segments and a channel on a demo camera, and
// waits until the channel records by itself.
func startRecordingDev(t *testing.T, dsn string) *recordingDev {
	t.Helper()
	if testing.Short() {
		t.Skip("runs vms dev: skipped in -short mode")
	}
	bin, err := temporaltest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	cam, err := democam.Start(context.Background(), "127.0.0.1:0", "cam", filepath.Join("..", "..", "testdata", "demo.h264"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.Close)
	r := &recordingDev{t: t, d: newDevProcs(t, bin)}
	r.d.env = append(r.d.env, "VMS_SEGMENT_LENGTH=4s")
	if dsn != "" {
		r.d.env = append(r.d.env, "DATABASE_URL="+dsn)
	}
	r.p = r.d.start(t)
	r.d.waitHealthy(t, r.p)
	r.c = devClient{base: "http://" + r.d.httpAddr, key: r.d.secrets(t).APIKey}

	u, _ := url.Parse(cam.URL())
	port, _ := strconv.Atoi(u.Port())
	var created struct{ ID string }
	r.c.do(t, http.MethodPost, "/v1/cameras", map[string]any{"name": "restart", "protocol": "rtsp", "host": u.Hostname(),
		"port": port, "streams": map[string]string{"high": u.Path}}, http.StatusCreated, &created)
	r.c.do(t, http.MethodPost, "/v1/channels", map[string]any{"camera_id": created.ID}, http.StatusCreated, &created)
	r.ch = created.ID
	waitUntil(t, "two recordings", 90*time.Second, func() bool { return len(r.c.recordings(t, r.ch)) >= 2 })
	r.since = time.Now()
	return r
}

// measure waits until the channel records again after a fault that began
// at at, its faulty part back at back, logs the fault's figures and
// returns the number of gaps it left. Overlapping recordings fail the test.
func (r *recordingDev) measure(t *testing.T, fault string, at, back time.Time) (gaps int) {
	t.Helper()
	var state struct {
		State struct {
			Status string `json:"status"`
		} `json:"state"`
	}
	waitUntil(t, "state recording", 90*time.Second, func() bool {
		r.c.do(t, http.MethodGet, "/v1/channels/"+r.ch, nil, http.StatusOK, &state)
		return state.State.Status == contract.StateRecording
	})
	stateBack := time.Since(back)
	var recs []devRecording
	waitUntil(t, "two recordings after the fault", 90*time.Second, func() bool {
		recs = r.c.recordings(t, r.ch)
		return len(recs) >= 2 && recs[len(recs)-2].Start.After(back)
	})
	var lost, resumed time.Duration
	for i := 1; i < len(recs); i++ {
		prev, rec := recs[i-1], recs[i]
		switch hole := rec.Start.Sub(prev.End); {
		case hole < -250*time.Millisecond:
			t.Errorf("recording %s (from %s) overlaps %s (to %s)", rec.ID, rec.Start, prev.ID, prev.End)
		case hole > 250*time.Millisecond && rec.Start.After(r.since):
			gaps++
			lost += hole
			resumed = rec.Start.Sub(back)
		}
	}
	r.since = time.Now()
	t.Logf("fault matrix | %-32s | recording again %5.1f s after back (state recording %5.1f s) | media lost %5.1f s in %d gaps | down %.1f s",
		fault, max(resumed, 0).Seconds(), stateBack.Seconds(), lost.Seconds(), gaps, back.Sub(at).Seconds())
	return gaps
}

// privatePostgres is a PostgreSQL instance of the test's own.
type privatePostgres struct {
	dir, data, dsn string
	port           int
}

// startPrivatePostgres initializes and starts a PostgreSQL on a free
// loopback port, in a folder of its own (as the postgres user when the test
// runs as root: PostgreSQL refuses to run as root); stopped and removed
// when the test ends.
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	for _, tool := range []string{"initdb", "pg_ctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	// Not t.TempDir: its parents are closed to the postgres user.
	dir, err := os.MkdirTemp("", "vms-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg := &privatePostgres{dir: dir, data: filepath.Join(dir, "data"), port: freePort(t)}
	pg.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pg.run(t, "initdb", "-D", pg.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	pg.ctl(t, "start")
	t.Cleanup(func() { pg.run(t, "pg_ctl", "-D", pg.data, "-m", "immediate", "stop") })
	return pg
}

// ctl runs pg_ctl on the instance: start waits until it accepts connections.
func (pg *privatePostgres) ctl(t *testing.T, args ...string) {
	t.Helper()
	base := []string{"-D", pg.data, "-w", "-l", filepath.Join(pg.dir, "postgres.log")}
	if args[0] == "start" {
		base = append(base, "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", pg.port, pg.dir))
	}
	pg.run(t, "pg_ctl", append(base, args...)...)
}

// run runs a PostgreSQL tool, as the postgres user when the test is root.
func (pg *privatePostgres) run(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.dir, "postgres.log"))
		t.Fatalf("%s %q: %v\n%s\n%s", name, args, err, out, log)
	}
}

// secrets reads the dev secrets vms dev keeps in its data folder.
func (d *devProcs) secrets(t *testing.T) devSecrets {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, "dev-secrets.json"))
	var s devSecrets
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// devClient calls a vms dev's API with the dev account's key.
type devClient struct{ base, key string }

func (c devClient) do(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

type devRecording struct {
	ID    string    `json:"id"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// recordings lists the channel's recordings of the last hour, oldest first.
func (c devClient) recordings(t *testing.T, ch string) []devRecording {
	t.Helper()
	q := url.Values{"from": {time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
		"to": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "limit": {"1000"}}
	var page struct {
		Items []devRecording `json:"items"`
	}
	c.do(t, http.MethodGet, "/v1/channels/"+ch+"/recordings?"+q.Encode(), nil, http.StatusOK, &page)
	slices.SortFunc(page.Items, func(a, b devRecording) int { return a.Start.Compare(b.Start) })
	return page.Items
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

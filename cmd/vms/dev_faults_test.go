//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
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
	if testing.Short() {
		t.Skip("starts vms dev three times: skipped in -short mode")
	}
	bin, err := temporaltest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	cam, err := democam.Start(context.Background(), "127.0.0.1:0", "cam", filepath.Join("..", "..", "testdata", "demo.h264"))
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	d := newDevProcs(t, bin)
	d.env = append(d.env, "VMS_SEGMENT_LENGTH=4s")
	p := d.start(t)
	d.waitHealthy(t, p)
	c := devClient{base: "http://" + d.httpAddr, key: d.secrets(t).APIKey}

	u, _ := url.Parse(cam.URL())
	port, _ := strconv.Atoi(u.Port())
	var created struct{ ID string }
	c.do(t, http.MethodPost, "/v1/cameras", map[string]any{"name": "restart", "protocol": "rtsp", "host": u.Hostname(),
		"port": port, "streams": map[string]string{"high": u.Path}}, http.StatusCreated, &created)
	c.do(t, http.MethodPost, "/v1/channels", map[string]any{"camera_id": created.ID}, http.StatusCreated, &created)
	ch := created.ID
	waitUntil(t, "two recordings", 90*time.Second, func() bool { return len(c.recordings(t, ch)) >= 2 })

	since, top := time.Now(), t
	for _, stop := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGKILL", syscall.SIGKILL}} {
		sig := stop.sig
		t.Run(stop.name, func(t *testing.T) {
			at := time.Now()
			if err := syscall.Kill(p.proc.Pid(), sig); err != nil {
				t.Fatal(err)
			}
			waitExit(t, p, 30*time.Second)
			// Started on the whole test: it outlives this subtest.
			p = d.start(top)
			d.waitHealthy(t, p)
			back := time.Now()
			var state struct {
				State struct {
					Status string `json:"status"`
				} `json:"state"`
			}
			waitUntil(t, "state recording", 90*time.Second, func() bool {
				c.do(t, http.MethodGet, "/v1/channels/"+ch, nil, http.StatusOK, &state)
				return state.State.Status == contract.StateRecording
			})
			stateBack := time.Since(back)
			var recs []devRecording
			waitUntil(t, "two recordings after the restart", 90*time.Second, func() bool {
				recs = c.recordings(t, ch)
				return len(recs) >= 2 && recs[len(recs)-2].Start.After(back)
			})
			var lost, resumed time.Duration
			gaps := 0
			for i := 1; i < len(recs); i++ {
				prev, r := recs[i-1], recs[i]
				switch hole := r.Start.Sub(prev.End); {
				case hole < -250*time.Millisecond:
					t.Errorf("recording %s (from %s) overlaps %s (to %s)", r.ID, r.Start, prev.ID, prev.End)
				case hole > 250*time.Millisecond && r.Start.After(since):
					gaps++
					lost += hole
					resumed = r.Start.Sub(back)
				}
			}
			since = time.Now()
			t.Logf("fault matrix | %-32s | recording again %5.1f s after back (state recording %5.1f s) | media lost %5.1f s in %d gaps | vms dev down %.1f s",
				"vms dev "+stop.name+", started again", max(resumed, 0).Seconds(), stateBack.Seconds(), lost.Seconds(), gaps,
				back.Sub(at).Seconds())
			if gaps == 0 {
				t.Errorf("no gap in the timeline across a %s restart", stop.name)
			}
		})
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

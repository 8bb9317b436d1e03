package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opennvr/vms/api"
	"github.com/opennvr/vms/store/storetest"
)

// TestMetricsChannelStates: /metrics counts channels by recording state
// from the database, fleet-wide.
func TestMetricsChannelStates(t *testing.T) {
	e := newEnv(t, storetest.Open(t, "sqlite"), api.Options{})
	cam := e.mustCreate("/v1/cameras", e.keyA, `{"name":"door","protocol":"rtsp","host":"127.0.0.1","port":1,"streams":{"high":"/h"}}`)
	e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`"}`)
	e.mustCreate("/v1/channels", e.keyA, `{"camera_id":"`+cam+`","recording":"off"}`)

	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`vms_channels{state="starting"} 1`,
		`vms_channels{state="off"} 1`,
		`vms_channels{state="recording"} 0`,
		`vms_channel_recording_restarts 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/opennvr/vms/agent/onviftest"
	"github.com/opennvr/vms/control"
)

func ptr(f float64) *float64 { return &f }

func eqPtr(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// TestPTZReachesONVIF: every action arrives at the camera as the right SOAP
// operation on the PTZ profile, with the right velocity signs or preset.
func TestPTZReachesONVIF(t *testing.T) {
	tests := []struct {
		action string
		preset int
		speed  float64
		want   onviftest.Call
	}{
		{"up", 0, 0.3, onviftest.Call{Operation: "ContinuousMove", PanX: ptr(0), PanY: ptr(0.3)}},
		{"down", 0, 0.3, onviftest.Call{Operation: "ContinuousMove", PanX: ptr(0), PanY: ptr(-0.3)}},
		{"left", 0, 1, onviftest.Call{Operation: "ContinuousMove", PanX: ptr(-1), PanY: ptr(0)}},
		{"right", 0, 0, onviftest.Call{Operation: "ContinuousMove", PanX: ptr(control.DefaultSpeed), PanY: ptr(0)}},
		{"zoom_in", 0, 0.25, onviftest.Call{Operation: "ContinuousMove", Zoom: ptr(0.25)}},
		{"zoom_out", 0, 0.25, onviftest.Call{Operation: "ContinuousMove", Zoom: ptr(-0.25)}},
		{"stop", 0, 0, onviftest.Call{Operation: "Stop", StopPanTilt: "true", StopZoom: "true"}},
		{"home", 0, 0, onviftest.Call{Operation: "GotoHomePosition"}},
		{"preset", 2, 0, onviftest.Call{Operation: "GotoPreset", PresetToken: "preset-b"}},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			cam := onviftest.Start(t, onviftest.Options{Username: "admin", Password: "s3cret"})
			access := control.Camera{ONVIF: cam.Addr(), Username: "admin", Password: "s3cret"}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := (&Executor{}).PTZ(ctx, access, tt.action, tt.preset, tt.speed); err != nil {
				t.Fatalf("PTZ %s: %v", tt.action, err)
			}
			calls := cam.Calls()
			if tt.action == "preset" {
				if len(calls) != 2 || calls[0].Operation != "GetPresets" || calls[0].ProfileToken != onviftest.ProfileToken {
					t.Fatalf("calls %+v, want GetPresets then GotoPreset", calls)
				}
				calls = calls[1:]
			}
			if len(calls) != 1 {
				t.Fatalf("calls %+v, want one %s", calls, tt.want.Operation)
			}
			got := calls[0]
			if got.Operation != tt.want.Operation || got.ProfileToken != onviftest.ProfileToken ||
				!eqPtr(got.PanX, tt.want.PanX) || !eqPtr(got.PanY, tt.want.PanY) || !eqPtr(got.Zoom, tt.want.Zoom) ||
				got.PresetToken != tt.want.PresetToken || got.StopPanTilt != tt.want.StopPanTilt || got.StopZoom != tt.want.StopZoom {
				t.Fatalf("camera got %s profile %q pan (%v, %v) zoom %v preset %q stop %q/%q\nwant %s profile %q pan (%v, %v) zoom %v preset %q stop %q/%q",
					got.Operation, got.ProfileToken, show(got.PanX), show(got.PanY), show(got.Zoom), got.PresetToken, got.StopPanTilt, got.StopZoom,
					tt.want.Operation, onviftest.ProfileToken, show(tt.want.PanX), show(tt.want.PanY), show(tt.want.Zoom), tt.want.PresetToken, tt.want.StopPanTilt, tt.want.StopZoom)
			}
		})
	}
}

func show(f *float64) any {
	if f == nil {
		return "absent"
	}
	return *f
}

func TestPTZErrors(t *testing.T) {
	cam := onviftest.Start(t, onviftest.Options{Username: "admin", Password: "s3cret"})
	ctx := context.Background()
	tests := []struct {
		name   string
		access control.Camera
		action string
		preset int
		want   string
	}{
		{"wrong password", control.Camera{ONVIF: cam.Addr(), Username: "admin", Password: "nope"}, "stop", 0, "no ONVIF device service"},
		{"preset out of range", control.Camera{ONVIF: cam.Addr(), Username: "admin", Password: "s3cret"}, "preset", 9, "preset 9 does not exist (the camera has 3)"},
		{"no camera", control.Camera{ONVIF: "127.0.0.1:1"}, "stop", 0, "no ONVIF device service at 127.0.0.1:1"},
		{"no address", control.Camera{}, "stop", 0, "names no ONVIF address"},
		{"bad action", control.Camera{ONVIF: cam.Addr()}, "somersault", 0, "action must be one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Executor{}).PTZ(ctx, tt.access, tt.action, tt.preset, 0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "nope") {
				t.Fatalf("credentials in the error: %v", err)
			}
		})
	}
}

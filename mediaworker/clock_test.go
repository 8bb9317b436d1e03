package mediaworker_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/media/mediatest"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/recording"
)

// An agent whose clock is off by more than the tolerance gets its footage
// stamped with the worker's clock, whether its Hello says what its clock
// reads or (an older agent) only its frames do; within the tolerance the
// agent's times are kept.
func TestIngestCorrectsAgentClock(t *testing.T) {
	mediatest.Require(t)
	tests := []struct {
		name       string
		skew       time.Duration // agent clock − worker clock
		helloClock bool
		corrected  bool
	}{
		{name: "1 h ahead", skew: time.Hour, helloClock: true, corrected: true},
		{name: "1 h behind", skew: -time.Hour, helloClock: true, corrected: true},
		{name: "1 h ahead, no clock in hello", skew: time.Hour, corrected: true},
		{name: "1 h behind, no clock in hello", skew: -time.Hour, corrected: true},
		{name: "within tolerance", skew: mediaworker.DefaultClockTolerance - 500*time.Millisecond, helloClock: true},
		{name: "within tolerance, no clock in hello", skew: -(mediaworker.DefaultClockTolerance - 500*time.Millisecond)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			control := newFakeControl()
			in := startIngest(t, control, 30*time.Second)
			g := control.grant("token-1")
			track, frames := demoFrames(t, 3*time.Second)

			sent := time.Now()
			agentStart := sent.Add(tc.skew) // what the agent's clock reads now
			for i := range frames {
				frames[i].Wall = agentStart.Add(frames[i].DTS)
			}
			hello := media.Hello{Version: media.ProtocolVersion, Token: "token-1", Tracks: []media.Track{track}}
			if tc.helloClock {
				hello.Clock = agentStart.UnixNano()
			}
			conn, _ := in.connectHello(t, hello)
			sendFrames(t, conn, frames)
			stopStream(t, conn)
			in.waitStopped(t, g.SessionID)

			got := control.accepted(g.SessionID)
			if len(got) != 1 {
				t.Fatalf("control plane recorded %+v, want one segment", got)
			}
			r := got[0]
			if tc.corrected {
				// Stamped with the worker's clock: when the stream arrived.
				if d := r.Start.Sub(sent); d < 0 || d > time.Second {
					t.Errorf("segment starts %s after the stream was sent, want within 1 s", d)
				}
			} else if !r.Start.Equal(agentStart.UTC()) {
				t.Errorf("segment starts at %s, want the agent's %s", r.Start, agentStart.UTC())
			}
			if r.End.Sub(r.Start) != 3*time.Second || r.DurationMS != 3000 {
				t.Errorf("segment %s..%s (%d ms), want 3 s", r.Start, r.End, r.DurationMS)
			}
			if key := recording.RecordingKey(uuid.MustParse(g.ChannelID), uuid.MustParse(g.SessionID), r.Start); r.Key != key {
				t.Errorf("segment key %s, want %s", r.Key, key)
			}
			info, err := in.objects.Head(t.Context(), r.Key)
			if err != nil {
				t.Fatalf("segment not in S3: %v", err)
			}
			if md, ok := recording.SegmentReportFromMetadata(r.Key, info.Size, info.Metadata); !ok || !md.Start.Equal(r.Start) {
				t.Errorf("object metadata %v, want start %s", info.Metadata, r.Start)
			}
		})
	}
}

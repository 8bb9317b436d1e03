package agent

import (
	"testing"
	"time"
)

// TestFrameStamperWallFollowsDTS: a frame's wall clock is the first frame's
// capture time plus its DTS, whatever the packets' arrival jitter, so
// segments cut on it are contiguous; a clock that strays by more than
// maxWallDrift moves the anchor.
func TestFrameStamperWallFollowsDTS(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	s := &frameStamper{clockRate: 90000}
	tests := []struct {
		dts     int64         // 90 kHz ticks
		arrival time.Duration // capture time after t0
		want    time.Duration // stamped wall clock after t0
	}{
		{1000, 0, 0}, // the anchor
		{1000 + 90000, time.Second + 36*time.Millisecond, time.Second}, // jitter: DTS wins
		{1000 + 180000, 2*time.Second - 40*time.Millisecond, 2 * time.Second},
		{1000 + 270000, 5 * time.Second, 5 * time.Second}, // 2 s off: re-anchored on the capture time
		{1000 + 360000, 6*time.Second + 20*time.Millisecond, 6 * time.Second},
	}
	for i, tt := range tests {
		f := s.frame(0, &rawFrame{dts: tt.dts, pts: tt.dts}, t0.Add(tt.arrival))
		if got := f.Wall.Sub(t0); got != tt.want {
			t.Errorf("frame %d: wall clock %s after t0, want %s", i, got, tt.want)
		}
	}
}

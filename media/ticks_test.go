package media

import (
	"testing"
	"time"
)

func TestSignedTicksToDuration(t *testing.T) {
	// Four days at 90 kHz overflow a naive ticks*1e9/rate.
	ticks := int64(4*24*3600) * 90000
	if got := SignedTicksToDuration(ticks, 90000); got != 96*time.Hour {
		t.Errorf("got %v, want 96h", got)
	}
	if got := SignedTicksToDuration(-3600, 90000); got != -40*time.Millisecond {
		t.Errorf("got %v, want -40ms", got)
	}
}

package agent

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff yields capped exponential delays with jitter: min, 2·min, 4·min…
// up to max, each drawn uniformly from [d/2, d] so that many agents cut off
// by the same worker restart do not reconnect in lockstep.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 32 && b.min<<b.n > 0 && b.min<<b.n < b.max {
		d = b.min << b.n
	}
	b.n++
	half := d / 2
	return half + rand.N(d-half+1)
}

func (b *backoff) reset() { b.n = 0 }

// sleepCtx waits for d or until ctx is done, reporting whether the full
// delay passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

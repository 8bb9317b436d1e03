package mediaworker

import (
	"log/slog"
	"time"
)

// DefaultClockTolerance is how far an agent's clock may be from the
// worker's before the worker restamps the agent's stream with its own
// clock. It is well above network latency and NTP error, far below any
// backdating worth the trouble.
const DefaultClockTolerance = 2 * time.Second

// clockCheck keeps one stream's footage stamped with the worker's clock.
// Frames carry the agent's capture wall clock, which a wrong (or
// dishonest) agent clock would carry into the recordings' times: the
// first comparison of an agent time with the worker's time at receipt
// decides an offset that every wall-clock time of the stream gets.
type clockCheck struct {
	tolerance time.Duration
	log       *slog.Logger
	decided   bool
	offset    time.Duration // worker − agent, 0 within tolerance
}

// compare decides the offset from an agent time and the worker's time
// when it arrived; only the first call counts. what names the agent time
// in the log.
func (c *clockCheck) compare(agent, received time.Time, what string) {
	if c.decided {
		return
	}
	c.decided = true
	skew := received.Sub(agent)
	if skew.Abs() <= c.tolerance {
		return
	}
	c.offset = skew
	c.log.Warn("agent clock is off: stamping its footage with this worker's clock",
		"agent_ahead_by", -skew, "by", what, "tolerance", c.tolerance)
}

// frame corrects a frame's wall clock, deciding the offset from the first
// frame that has one if the Hello carried no clock (an older agent).
func (c *clockCheck) frame(wall, received time.Time) time.Time {
	if wall.IsZero() {
		return wall // the segmenter uses its own clock for these
	}
	c.compare(wall, received, "first frame")
	return wall.Add(c.offset)
}

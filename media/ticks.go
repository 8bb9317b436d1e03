package media

import "time"

// Timestamps travel as time.Duration; MP4 samples and RTP packets count
// ticks of a clock (a track's timescale, 90 kHz for video). These
// conversions split whole seconds from the rest, so they neither overflow
// for streams that run for days nor lose precision; they round toward zero.

// DurationToTicks converts d to ticks of a timescale Hz clock; a negative d
// is 0 ticks.
func DurationToTicks(d time.Duration, timescale uint32) uint64 {
	if d < 0 {
		return 0
	}
	ts := uint64(timescale)
	return uint64(d/time.Second)*ts + uint64(d%time.Second)*ts/uint64(time.Second)
}

// DurationToSignedTicks is DurationToTicks keeping the sign of d, for
// offsets such as a sample's PTS minus its DTS.
func DurationToSignedTicks(d time.Duration, timescale uint32) int64 {
	if d < 0 {
		return -int64(DurationToTicks(-d, timescale))
	}
	return int64(DurationToTicks(d, timescale))
}

// TicksToDuration converts n ticks of a timescale Hz clock to a duration.
func TicksToDuration(n uint64, timescale uint32) time.Duration {
	ts := uint64(timescale)
	return time.Duration(n/ts)*time.Second + time.Duration(n%ts*uint64(time.Second)/ts)
}

// SignedTicksToDuration is TicksToDuration for a tick count that may be
// negative, such as the difference of two RTP timestamps.
func SignedTicksToDuration(n int64, timescale uint32) time.Duration {
	if n < 0 {
		return -TicksToDuration(uint64(-n), timescale)
	}
	return TicksToDuration(uint64(n), timescale)
}

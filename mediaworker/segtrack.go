package mediaworker

import (
	"bytes"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/opennvr/vms/media"
)

// codecParams are what a segment's init needs for one track.
type codecParams struct {
	vps, sps, pps []byte
	width, height int // MJPEG
}

func (p codecParams) equal(o codecParams) bool {
	return bytes.Equal(p.vps, o.vps) && bytes.Equal(p.sps, o.sps) && bytes.Equal(p.pps, o.pps) &&
		p.width == o.width && p.height == o.height
}

// segTrack is one track's state in a Segmenter: its parameter sets, the
// frame waiting for its duration and the fragment being built.
type segTrack struct {
	media     media.Track
	mp4ID     int
	timescale uint32

	latest codecParams // newest parameters seen (Hello, then in-band)
	params codecParams // parameters in the open segment's init
	active bool        // the open segment's init has this track
	paused bool        // parameters changed mid-segment; wait for the next one

	// The newest frame waits here until the next one gives its duration.
	hasHeld bool
	held    heldFrame
	heldBuf []byte
	// The frame being written: its sample data and whether it is a
	// keyframe. The bitstream decides, not Frame.Keyframe: a segment that
	// starts on a non-IDR "keyframe" would not decode.
	scratch    []byte
	scratchKey bool

	// Samples of the fragment being built; payloads live in arena.
	samples  []fmp4.Sample
	ptrs     []*fmp4.Sample
	arena    []byte
	fragBase uint64 // decode time of samples[0]
	next     uint64 // decode time after the last sample
	lastDur  uint32
}

type heldFrame struct {
	dts, pts time.Duration
	key      bool
	wall     time.Time
}

// codec returns the init codec for the newest parameters, if complete.
func (t *segTrack) codec() (mp4.Codec, bool) {
	return t.codecFor(t.latest)
}

func (t *segTrack) codecFor(p codecParams) (mp4.Codec, bool) {
	switch t.media.Codec {
	case media.CodecH264:
		if p.sps == nil || p.pps == nil {
			return nil, false
		}
		return &mp4.CodecH264{SPS: p.sps, PPS: p.pps}, true
	case media.CodecH265:
		if p.vps == nil || p.sps == nil || p.pps == nil {
			return nil, false
		}
		return &mp4.CodecH265{VPS: p.vps, SPS: p.sps, PPS: p.pps}, true
	case media.CodecMJPEG:
		if p.width == 0 || p.height == 0 {
			return nil, false
		}
		return &mp4.CodecMJPEG{Width: p.width, Height: p.height}, true
	}
	return nil, false
}

// hold makes f (whose sample data is in t.scratch) the held frame.
func (t *segTrack) hold(f media.Frame) {
	t.heldBuf, t.scratch = t.scratch, t.heldBuf
	t.held = heldFrame{dts: f.DTS, pts: f.PTS, key: t.scratchKey, wall: f.Wall}
	t.hasHeld = true
}

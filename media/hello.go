package media

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// Limits a Hello must respect.
const (
	// MaxHelloSize bounds the JSON text of a Hello; parameter sets are a few
	// dozen bytes, so anything near this is not a camera.
	MaxHelloSize = 64 << 10
	// MaxTracks is the most tracks one stream may carry.
	MaxTracks = 4
	// DefaultClockRate is the timescale used when a Track leaves ClockRate
	// zero; 90 kHz is what RTP uses for video.
	DefaultClockRate = 90000
)

var (
	// ErrBadHello is wrapped by ReadHello errors other than a version
	// mismatch; the worker answers with CloseBadHello.
	ErrBadHello = errors.New("bad hello")
	// ErrUnsupportedVersion is returned for a Hello of another protocol
	// version; the worker answers with CloseUnsupportedVersion.
	ErrUnsupportedVersion = errors.New("unsupported protocol version")
)

// ReadHello decodes and validates the agent's first message: the protocol
// version, a non-empty token, a clock that is absent or not negative, 1..MaxTracks tracks with unique ids, known
// codecs, and parameter sets that parse (H.264 SPS+PPS, H.265 VPS+SPS+PPS),
// because the segmenter cannot write an init segment without them.
func ReadHello(b []byte) (Hello, error) {
	if len(b) > MaxHelloSize {
		return Hello{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrBadHello, len(b), MaxHelloSize)
	}
	var h Hello
	if err := json.Unmarshal(b, &h); err != nil {
		return Hello{}, fmt.Errorf("%w: %w", ErrBadHello, err)
	}
	if h.Version != ProtocolVersion {
		return Hello{}, fmt.Errorf("%w: %d, want %d", ErrUnsupportedVersion, h.Version, ProtocolVersion)
	}
	if h.Token == "" {
		return Hello{}, fmt.Errorf("%w: empty token", ErrBadHello)
	}
	if h.Clock < 0 {
		return Hello{}, fmt.Errorf("%w: negative clock", ErrBadHello)
	}
	if len(h.Tracks) == 0 || len(h.Tracks) > MaxTracks {
		return Hello{}, fmt.Errorf("%w: %d tracks, want 1..%d", ErrBadHello, len(h.Tracks), MaxTracks)
	}
	seen := make(map[uint8]bool, len(h.Tracks))
	for _, t := range h.Tracks {
		if seen[t.ID] {
			return Hello{}, fmt.Errorf("%w: duplicate track id %d", ErrBadHello, t.ID)
		}
		seen[t.ID] = true
		if err := ValidateTrack(t); err != nil {
			return Hello{}, err
		}
	}
	return h, nil
}

// ValidateTrack checks one track the way ReadHello does.
func ValidateTrack(t Track) error {
	switch t.Codec {
	case CodecH264:
		if len(t.SPS) == 0 || len(t.PPS) == 0 {
			return fmt.Errorf("%w: track %d: h264 needs sps and pps", ErrBadHello, t.ID)
		}
		if H264NALUType(t.SPS) != h264.NALUTypeSPS || H264NALUType(t.PPS) != h264.NALUTypePPS {
			return fmt.Errorf("%w: track %d: sps/pps have wrong nal unit types", ErrBadHello, t.ID)
		}
		var sps h264.SPS
		if err := sps.Unmarshal(t.SPS); err != nil {
			return fmt.Errorf("%w: track %d: h264 sps: %w", ErrBadHello, t.ID, err)
		}
	case CodecH265:
		if len(t.VPS) == 0 || len(t.SPS) == 0 || len(t.PPS) == 0 {
			return fmt.Errorf("%w: track %d: h265 needs vps, sps and pps", ErrBadHello, t.ID)
		}
		if len(t.VPS) < 2 || len(t.PPS) < 2 ||
			H265NALUType(t.VPS) != h265.NALUType_VPS_NUT ||
			H265NALUType(t.PPS) != h265.NALUType_PPS_NUT {
			return fmt.Errorf("%w: track %d: vps/pps have wrong nal unit types", ErrBadHello, t.ID)
		}
		var sps h265.SPS
		if err := sps.Unmarshal(t.SPS); err != nil {
			return fmt.Errorf("%w: track %d: h265 sps: %w", ErrBadHello, t.ID, err)
		}
	case CodecMJPEG:
	default:
		return fmt.Errorf("%w: track %d: unknown codec %q", ErrBadHello, t.ID, t.Codec)
	}
	return nil
}

// TimeScale is the track's clock rate, DefaultClockRate when unset.
func (t Track) TimeScale() uint32 {
	if t.ClockRate == 0 {
		return DefaultClockRate
	}
	return t.ClockRate
}

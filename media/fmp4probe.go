package media

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// SegmentInfo is what ProbeSegment reads from a recording segment.
type SegmentInfo struct {
	// Codec is the first track's codec (Codec*), or "" for any other.
	Codec string
	// Duration is the first track's media duration: the decode time after
	// its last sample, as the media worker's segmenter computes it.
	Duration time.Duration
}

// ProbeSegment reads a fragmented MP4 recording segment (init, then
// fragments) and returns its first track's codec and duration — the track
// that leads the media worker's segmenter. It reads r to the end, one
// fragment at a time (each bounded by MaxJoinBoxSize).
func ProbeSegment(r io.Reader) (SegmentInfo, error) {
	p, err := probeSegment(r, false)
	return p.whole, err
}

// ProbePartialSegment reads a segment whose writer died mid-file (a crash
// while it was recorded): it returns the info of its whole fragments and
// the length of the prefix they end, where the file can be cut to a valid
// segment. A torn or garbled tail is ignored. complete is 0 when not even
// the init and one fragment are whole; err is only for reading r.
func ProbePartialSegment(r io.Reader) (info SegmentInfo, complete int64, err error) {
	p, err := probeSegment(r, true)
	return p.whole, p.complete, err
}

// ProbePartialSegmentToKeyframe is ProbePartialSegment for a file to be
// cut before the last whole fragment that starts with a keyframe of the
// first track, as the media worker's segmenter writes them: what is left
// ends where a resumed stream's replay starts at the latest
// (docs/protocol.md, "Resuming a stream"). cut is 0 when no frame would be
// left.
func ProbePartialSegmentToKeyframe(r io.Reader) (info SegmentInfo, cut int64, err error) {
	p, err := probeSegment(r, true)
	return p.toKey, p.keyAt, err
}

// probed is what probeSegment found.
type probed struct {
	whole    SegmentInfo // up to the end of the last whole fragment
	complete int64       // where that fragment ends
	toKey    SegmentInfo // up to the last whole fragment starting with a keyframe
	keyAt    int64       // where that fragment begins
}

// probeSegment reads the segment's fragments; partial stops at the first
// bad one instead of failing.
func probeSegment(r io.Reader, partial bool) (probed, error) {
	br := &boxReader{r: bufio.NewReaderSize(r, 64<<10)}
	bad := func(err error) (probed, error) {
		if partial && errors.Is(err, ErrBadSegment) {
			return probed{}, nil
		}
		return probed{}, fmt.Errorf("probe: %w", err)
	}
	initRaw, err := br.readInit()
	if err != nil {
		return bad(err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(initRaw)); err != nil {
		return bad(fmt.Errorf("%w: init: %w", ErrBadSegment, err))
	}
	if len(init.Tracks) == 0 {
		return bad(fmt.Errorf("%w: no tracks", ErrBadSegment))
	}
	lead := init.Tracks[0]
	info := func(end uint64) SegmentInfo {
		return SegmentInfo{Codec: codecName(lead.Codec), Duration: TicksToDuration(end, lead.TimeScale)}
	}
	var (
		end      uint64 // decode time after the lead track's last sample
		complete int64  // end of the last whole fragment
		out      probed
	)
	for {
		raw, err := br.readFragment()
		if errors.Is(err, io.EOF) {
			break
		}
		var parts fmp4.Parts
		if err == nil {
			if perr := parts.Unmarshal(raw); perr != nil {
				err = fmt.Errorf("%w: fragment: %w", ErrBadSegment, perr)
			}
		}
		if err != nil {
			if partial && errors.Is(err, ErrBadSegment) {
				break
			}
			return probed{}, fmt.Errorf("probe: %w", err)
		}
		startsKey := false
		for _, p := range parts {
			for _, pt := range p.Tracks {
				if pt.ID == lead.ID && len(pt.Samples) > 0 && !startsKey {
					startsKey = !pt.Samples[0].IsNonSyncSample
				}
			}
		}
		if startsKey && complete > 0 {
			out.toKey, out.keyAt = info(end), complete
		}
		complete = br.n
		for _, p := range parts {
			for _, pt := range p.Tracks {
				if pt.ID != lead.ID {
					continue
				}
				t := pt.BaseTime
				for _, s := range pt.Samples {
					t += uint64(s.Duration)
				}
				end = max(end, t)
			}
		}
	}
	out.whole, out.complete = info(end), complete
	return out, nil
}

func codecName(c mp4.Codec) string {
	switch c.(type) {
	case *mp4.CodecH264:
		return CodecH264
	case *mp4.CodecH265:
		return CodecH265
	case *mp4.CodecMJPEG:
		return CodecMJPEG
	}
	return ""
}

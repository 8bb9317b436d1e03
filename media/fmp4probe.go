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
	br := &boxReader{r: bufio.NewReaderSize(r, 64<<10)}
	initRaw, err := br.readInit()
	if err != nil {
		return SegmentInfo{}, fmt.Errorf("probe: %w", err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(initRaw)); err != nil {
		return SegmentInfo{}, fmt.Errorf("probe: %w: init: %w", ErrBadSegment, err)
	}
	if len(init.Tracks) == 0 {
		return SegmentInfo{}, fmt.Errorf("probe: %w: no tracks", ErrBadSegment)
	}
	lead := init.Tracks[0]
	var end uint64
	for {
		raw, err := br.readFragment()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return SegmentInfo{}, fmt.Errorf("probe: %w", err)
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(raw); err != nil {
			return SegmentInfo{}, fmt.Errorf("probe: %w: fragment: %w", ErrBadSegment, err)
		}
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
	return SegmentInfo{Codec: codecName(lead.Codec), Duration: TicksToDuration(end, lead.TimeScale)}, nil
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

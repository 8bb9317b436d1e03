package mediaworker

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/opennvr/vms/media"
)

// inspect validates f's payload and leaves in t.scratch what goes into the
// sample: for H.264/H.265 the NAL units without parameter sets and
// delimiters (which it records in t.latest).
func (t *segTrack) inspect(payload []byte) error {
	t.scratch, t.scratchKey = t.scratch[:0], false
	if len(payload) == 0 {
		return fmt.Errorf("%w: empty", ErrBadPayload)
	}
	if t.media.Codec == media.CodecMJPEG {
		w, h, err := jpegSize(payload)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadPayload, err)
		}
		t.latest.width, t.latest.height = w, h
		t.scratch = append(t.scratch, payload...)
		t.scratchKey = true
		return nil
	}
	if err := media.ValidateAVCC(payload); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	for off := 0; off < len(payload); {
		n := int(binary.BigEndian.Uint32(payload[off:]))
		nalu := payload[off+4 : off+4+n]
		off += 4 + n
		if dst := t.paramSlot(nalu); dst != nil {
			if !bytes.Equal(*dst, nalu) {
				// A broken SPS would fail every init from now on; refuse it.
				if err := t.checkSPS(nalu); err != nil {
					return fmt.Errorf("%w: in-band sps: %w", ErrBadPayload, err)
				}
				*dst = bytes.Clone(nalu)
			}
			continue
		}
		if t.isDelimiter(nalu) {
			continue
		}
		t.scratch = binary.BigEndian.AppendUint32(t.scratch, uint32(n))
		t.scratch = append(t.scratch, nalu...)
		t.scratchKey = t.scratchKey || t.isRandomAccess(nalu)
	}
	return nil
}

// paramSlot returns where an in-band parameter set NAL unit belongs, or
// nil for other NAL units.
func (t *segTrack) paramSlot(nalu []byte) *[]byte {
	if t.media.Codec == media.CodecH264 {
		switch media.H264NALUType(nalu) {
		case h264.NALUTypeSPS:
			return &t.latest.sps
		case h264.NALUTypePPS:
			return &t.latest.pps
		}
		return nil
	}
	switch media.H265NALUType(nalu) {
	case h265.NALUType_VPS_NUT:
		return &t.latest.vps
	case h265.NALUType_SPS_NUT:
		return &t.latest.sps
	case h265.NALUType_PPS_NUT:
		return &t.latest.pps
	}
	return nil
}

// checkSPS parses nalu if it is an SPS; other parameter sets pass.
func (t *segTrack) checkSPS(nalu []byte) error {
	if t.media.Codec == media.CodecH264 {
		if media.H264NALUType(nalu) != h264.NALUTypeSPS {
			return nil
		}
		var sps h264.SPS
		return sps.Unmarshal(nalu)
	}
	if media.H265NALUType(nalu) != h265.NALUType_SPS_NUT {
		return nil
	}
	var sps h265.SPS
	return sps.Unmarshal(nalu)
}

// isRandomAccess reports an IDR (H.264) or IRAP (H.265: BLA, IDR, CRA)
// picture, one a decoder can start from.
func (t *segTrack) isRandomAccess(nalu []byte) bool {
	if t.media.Codec == media.CodecH264 {
		return media.H264NALUType(nalu) == h264.NALUTypeIDR
	}
	typ := media.H265NALUType(nalu)
	return typ >= h265.NALUType_BLA_W_LP && typ <= h265.NALUType_CRA_NUT
}

func (t *segTrack) isDelimiter(nalu []byte) bool {
	if t.media.Codec == media.CodecH264 {
		return media.H264NALUType(nalu) == h264.NALUTypeAccessUnitDelimiter
	}
	return media.H265NALUType(nalu) == h265.NALUType_AUD_NUT
}

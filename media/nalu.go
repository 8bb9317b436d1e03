package media

import (
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// H264NALUType returns the type in an H.264 NAL unit's header byte; nalu
// must not be empty.
func H264NALUType(nalu []byte) h264.NALUType {
	return h264.NALUType(nalu[0] & 0x1f)
}

// H265NALUType returns the type in an H.265 NAL unit's header; nalu must
// not be empty.
func H265NALUType(nalu []byte) h265.NALUType {
	return h265.NALUType((nalu[0] >> 1) & 0x3f)
}

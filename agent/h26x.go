package agent

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/opennvr/vms/media"
)

// rawFrame is a frame whose timestamps are still in clock ticks.
type rawFrame struct {
	keyframe bool
	dts, pts int64
	payload  []byte
}

// errNoParams means a keyframe arrived before any parameter set, neither in
// the SDP nor in-band: it cannot be decoded, so it is dropped.
var errNoParams = errors.New("keyframe before parameter sets")

// h264Stream turns H.264 access units into AVCC frames.
//
// Many cameras announce SPS/PPS only in the SDP; others repeat them in-band
// before every IDR, sometimes with different bytes. The stream starts with
// the SDP ones and follows the in-band ones; the DTS extractor needs them in
// front of every IDR, whatever the camera sent.
type h264Stream struct {
	forma           *format.H264
	dec             *rtph264.Decoder
	sps, pps        []byte
	annSPS, annPPS  []byte // what track() last returned
	dtsx            h264.DTSExtractor
	waitingKeyframe bool
}

func newH264Stream(f *format.H264) (*h264Stream, error) {
	d, err := f.CreateDecoder()
	if err != nil {
		return nil, fmt.Errorf("h264 decoder: %w", err)
	}
	sps, pps := f.SafeParams()
	s := &h264Stream{forma: f, dec: d, waitingKeyframe: true}
	if validH264SPS(sps) && len(pps) > 0 {
		s.sps, s.pps = bytes.Clone(sps), bytes.Clone(pps)
	}
	s.dtsx.Initialize()
	return s, nil
}

func (s *h264Stream) format() format.Format                       { return s.forma }
func (s *h264Stream) clockRate() int                              { return s.forma.ClockRate() }
func (s *h264Stream) decodeRTP(pkt *rtp.Packet) ([][]byte, error) { return s.dec.Decode(pkt) }

func (s *h264Stream) track() media.Track {
	s.annSPS, s.annPPS = s.sps, s.pps
	return media.Track{ID: 0, Codec: media.CodecH264, ClockRate: uint32(s.clockRate()), SPS: s.sps, PPS: s.pps}
}

func (s *h264Stream) paramsChanged() bool {
	return !bytes.Equal(s.sps, s.annSPS) || !bytes.Equal(s.pps, s.annPPS)
}

func (s *h264Stream) accessUnit(au [][]byte, pts int64) (*rawFrame, error) {
	nalus := make([][]byte, 0, len(au))
	idr := false
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		switch media.H264NALUType(nalu) {
		case h264.NALUTypeSPS:
			if !bytes.Equal(nalu, s.sps) && validH264SPS(nalu) {
				s.sps = bytes.Clone(nalu)
			}
		case h264.NALUTypePPS:
			if !bytes.Equal(nalu, s.pps) {
				s.pps = bytes.Clone(nalu)
			}
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
		case h264.NALUTypeIDR:
			idr = true
			nalus = append(nalus, nalu)
		default:
			nalus = append(nalus, nalu)
		}
	}
	if len(nalus) == 0 {
		return nil, nil
	}
	if s.waitingKeyframe {
		if !idr {
			return nil, nil
		}
		if s.sps == nil || s.pps == nil {
			return nil, errNoParams
		}
	}
	withParams := nalus
	if idr {
		withParams = append([][]byte{s.sps, s.pps}, nalus...)
	}
	dts, err := s.dtsx.Extract(withParams, pts)
	if err != nil {
		// The references of the next frames are unknown now: resume at
		// the next IDR rather than send undecodable pictures.
		s.waitingKeyframe = true
		return nil, fmt.Errorf("h264 dts: %w", err)
	}
	s.waitingKeyframe = false
	payload, err := h264.AVCC(nalus).Marshal()
	if err != nil {
		return nil, fmt.Errorf("h264 avcc: %w", err)
	}
	return &rawFrame{keyframe: idr, dts: dts, pts: pts, payload: payload}, nil
}

func validH264SPS(sps []byte) bool {
	if len(sps) == 0 {
		return false
	}
	var p h264.SPS
	return p.Unmarshal(sps) == nil
}

// h265Stream is h264Stream for H.265, with VPS/SPS/PPS.
type h265Stream struct {
	forma                  *format.H265
	dec                    *rtph265.Decoder
	vps, sps, pps          []byte
	annVPS, annSPS, annPPS []byte
	dtsx                   h265.DTSExtractor
	waitingKeyframe        bool
}

func newH265Stream(f *format.H265) (*h265Stream, error) {
	d, err := f.CreateDecoder()
	if err != nil {
		return nil, fmt.Errorf("h265 decoder: %w", err)
	}
	vps, sps, pps := f.SafeParams()
	s := &h265Stream{forma: f, dec: d, waitingKeyframe: true}
	if len(vps) > 0 && validH265SPS(sps) && len(pps) > 0 {
		s.vps, s.sps, s.pps = bytes.Clone(vps), bytes.Clone(sps), bytes.Clone(pps)
	}
	s.dtsx.Initialize()
	return s, nil
}

func (s *h265Stream) format() format.Format                       { return s.forma }
func (s *h265Stream) clockRate() int                              { return s.forma.ClockRate() }
func (s *h265Stream) decodeRTP(pkt *rtp.Packet) ([][]byte, error) { return s.dec.Decode(pkt) }

func (s *h265Stream) track() media.Track {
	s.annVPS, s.annSPS, s.annPPS = s.vps, s.sps, s.pps
	return media.Track{ID: 0, Codec: media.CodecH265, ClockRate: uint32(s.clockRate()), VPS: s.vps, SPS: s.sps, PPS: s.pps}
}

func (s *h265Stream) paramsChanged() bool {
	return !bytes.Equal(s.vps, s.annVPS) || !bytes.Equal(s.sps, s.annSPS) || !bytes.Equal(s.pps, s.annPPS)
}

func (s *h265Stream) accessUnit(au [][]byte, pts int64) (*rawFrame, error) {
	nalus := make([][]byte, 0, len(au))
	for _, nalu := range au {
		if len(nalu) < 2 {
			continue
		}
		switch media.H265NALUType(nalu) {
		case h265.NALUType_VPS_NUT:
			if !bytes.Equal(nalu, s.vps) {
				s.vps = bytes.Clone(nalu)
			}
		case h265.NALUType_SPS_NUT:
			if !bytes.Equal(nalu, s.sps) && validH265SPS(nalu) {
				s.sps = bytes.Clone(nalu)
			}
		case h265.NALUType_PPS_NUT:
			if !bytes.Equal(nalu, s.pps) {
				s.pps = bytes.Clone(nalu)
			}
		case h265.NALUType_AUD_NUT:
		default:
			nalus = append(nalus, nalu)
		}
	}
	if len(nalus) == 0 {
		return nil, nil
	}
	key := h265.IsRandomAccess(nalus)
	if s.waitingKeyframe {
		if !key {
			return nil, nil
		}
		if s.vps == nil || s.sps == nil || s.pps == nil {
			return nil, errNoParams
		}
	}
	withParams := nalus
	if key {
		withParams = append([][]byte{s.vps, s.sps, s.pps}, nalus...)
	}
	dts, err := s.dtsx.Extract(withParams, pts)
	if err != nil {
		s.waitingKeyframe = true
		return nil, fmt.Errorf("h265 dts: %w", err)
	}
	s.waitingKeyframe = false
	// H.265 in MP4 (hvcC) uses the same 4-byte length prefixes as AVCC.
	payload, err := h264.AVCC(nalus).Marshal()
	if err != nil {
		return nil, fmt.Errorf("h265 length-prefix: %w", err)
	}
	return &rawFrame{keyframe: key, dts: dts, pts: pts, payload: payload}, nil
}

func validH265SPS(sps []byte) bool {
	if len(sps) == 0 {
		return false
	}
	var p h265.SPS
	return p.Unmarshal(sps) == nil
}

package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// ReadH264File loads a raw Annex-B H.264 elementary stream (as written by
// `ffmpeg ... -f h264 x.h264`) into frames; see ParseH264AnnexB.
func ReadH264File(path string, fps int) (Track, []Frame, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Track{}, nil, fmt.Errorf("read h264 file: %w", err)
	}
	track, frames, err := ParseH264AnnexB(data, fps)
	if err != nil {
		return Track{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return track, frames, nil
}

// ParseH264AnnexB splits an Annex-B H.264 elementary stream (in decode
// order, as encoders write it) into access units and returns them as
// protocol frames, ready to send or to feed the segmenter:
//
//   - Payload is AVCC (4-byte lengths) without SPS/PPS/AUD/end-of-sequence
//     NAL units; the SPS and PPS are returned in the Track (ID 0, 90 kHz).
//   - DTS is frame index × frame duration; PTS comes from the slices' picture
//     order count, delayed by the stream's reorder depth so PTS >= DTS. With
//     B-frames PTS therefore differs from DTS; without, they are equal.
//   - Access units before the first IDR are dropped, so frames[0] is a
//     keyframe and the sequence can be looped: loop n starts at
//     n × (len(frames) × frame duration).
//   - Wall is left zero for the caller to stamp.
//
// fps sets the frame duration; fps <= 0 takes it from the SPS timing info,
// or 25 if the SPS has none. The stream must keep one SPS and one PPS
// (repeating them is fine), use frame (not field) coding, and picture order
// count type 0 or 2 — which covers x264 and typical camera output.
func ParseH264AnnexB(data []byte, fps int) (Track, []Frame, error) {
	var annexb h264.AnnexB
	if err := annexb.Unmarshal(data); err != nil {
		return Track{}, nil, fmt.Errorf("annex-b: %w", err)
	}

	p := h264Parser{}
	var aus []*h264AU
	var cur *h264AU
	for _, nalu := range annexb {
		nalu = trimTrailingZeros(nalu)
		if len(nalu) == 0 {
			continue
		}
		typ := H264NALUType(nalu)
		switch typ {
		case h264.NALUTypeSPS, h264.NALUTypePPS:
			if err := p.setParam(typ, nalu); err != nil {
				return Track{}, nil, err
			}
		}
		if startsAccessUnit(typ, nalu) && cur != nil && cur.hasVCL {
			aus = append(aus, cur)
			cur = nil
		}
		if cur == nil {
			cur = &h264AU{}
		}
		switch typ {
		case h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeAccessUnitDelimiter,
			h264.NALUTypeEndOfSequence, h264.NALUTypeEndOfStream, h264.NALUTypeFillerData:
			// Carried by the Track, or meaningless in a sample.
			continue
		case h264.NALUTypeIDR, h264.NALUTypeNonIDR:
			if !cur.hasVCL {
				if err := p.sliceInfo(cur, nalu); err != nil {
					return Track{}, nil, fmt.Errorf("access unit %d: %w", len(aus), err)
				}
			}
			cur.hasVCL = true
		}
		cur.nalus = append(cur.nalus, nalu)
	}
	if cur != nil && cur.hasVCL {
		aus = append(aus, cur)
	}
	if p.sps == nil || p.pps == nil {
		return Track{}, nil, errors.New("stream has no sps/pps")
	}

	// Drop what precedes the first IDR: it cannot be decoded on its own.
	first := slices.IndexFunc(aus, func(au *h264AU) bool { return au.idr })
	if first < 0 {
		return Track{}, nil, errors.New("stream has no idr frame")
	}
	aus = aus[first:]

	frameDur, err := frameDuration(fps, p.spsp)
	if err != nil {
		return Track{}, nil, err
	}

	// Display order: POC orders pictures between two IDRs (an IDR resets it
	// and every earlier picture is output before it).
	display := make([]int, len(aus))
	for start := 0; start < len(aus); {
		end := start + 1
		for end < len(aus) && !aus[end].idr {
			end++
		}
		idx := make([]int, end-start)
		for i := range idx {
			idx[i] = start + i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return aus[a].poc - aus[b].poc })
		for rank, i := range idx {
			display[i] = start + rank
		}
		start = end
	}
	delay := 0
	for i, d := range display {
		delay = max(delay, i-d)
	}

	frames := make([]Frame, len(aus))
	for i, au := range aus {
		frames[i] = Frame{
			Keyframe: au.idr,
			DTS:      time.Duration(i) * frameDur,
			PTS:      time.Duration(display[i]+delay) * frameDur,
			Payload:  avccPayload(au.nalus),
		}
	}
	track := Track{
		Codec:     CodecH264,
		ClockRate: DefaultClockRate,
		SPS:       bytes.Clone(p.sps),
		PPS:       bytes.Clone(p.pps),
	}
	return track, frames, nil
}

type h264AU struct {
	nalus  [][]byte
	hasVCL bool
	idr    bool
	poc    int
}

// h264Parser keeps what slice headers need from the parameter sets and the
// picture order count state (H.264 8.2.1).
type h264Parser struct {
	sps, pps []byte
	spsp     *h264.SPS

	prevPOCMsb, prevPOCLsb int
}

func (p *h264Parser) setParam(typ h264.NALUType, nalu []byte) error {
	switch typ {
	case h264.NALUTypeSPS:
		if p.sps != nil {
			if !bytes.Equal(p.sps, nalu) {
				return errors.New("sps changes mid-stream")
			}
			return nil
		}
		var spsp h264.SPS
		if err := spsp.Unmarshal(nalu); err != nil {
			return fmt.Errorf("sps: %w", err)
		}
		if !spsp.FrameMbsOnlyFlag {
			return errors.New("interlaced (field) coding is not supported")
		}
		if spsp.PicOrderCntType == 1 {
			return errors.New("pic_order_cnt_type 1 is not supported")
		}
		p.sps, p.spsp = nalu, &spsp
	case h264.NALUTypePPS:
		if p.pps != nil && !bytes.Equal(p.pps, nalu) {
			return errors.New("pps changes mid-stream")
		}
		p.pps = nalu
	}
	return nil
}

// sliceInfo reads the first slice header of a picture up to
// pic_order_cnt_lsb (H.264 7.3.3) and derives the picture order count.
func (p *h264Parser) sliceInfo(au *h264AU, nalu []byte) error {
	if p.spsp == nil {
		return errors.New("slice before sps")
	}
	sps := p.spsp
	idr := H264NALUType(nalu) == h264.NALUTypeIDR
	refIdc := (nalu[0] >> 5) & 0x03
	// The header fields we need fit in the first few dozen bytes.
	hdr := nalu[1:min(len(nalu), 64)]
	br := bitReader{buf: h264.EmulationPreventionRemove(hdr)}
	br.ue() // first_mb_in_slice
	br.ue() // slice_type
	br.ue() // pic_parameter_set_id
	if sps.SeparateColourPlaneFlag {
		br.bits(2)
	}
	br.bits(int(sps.Log2MaxFrameNumMinus4) + 4) // frame_num
	if idr {
		br.ue() // idr_pic_id
	}
	au.idr = idr
	if sps.PicOrderCntType != 0 {
		// Type 2: output order is decode order.
		au.poc = 0
		if br.err != nil {
			return fmt.Errorf("slice header: %w", br.err)
		}
		return nil
	}
	lsb := int(br.bits(int(sps.Log2MaxPicOrderCntLsbMinus4) + 4))
	if br.err != nil {
		return fmt.Errorf("slice header: %w", br.err)
	}
	maxLsb := 1 << (sps.Log2MaxPicOrderCntLsbMinus4 + 4)
	if idr {
		p.prevPOCMsb, p.prevPOCLsb = 0, 0
	}
	msb := p.prevPOCMsb
	switch {
	case lsb < p.prevPOCLsb && p.prevPOCLsb-lsb >= maxLsb/2:
		msb += maxLsb
	case lsb > p.prevPOCLsb && lsb-p.prevPOCLsb > maxLsb/2:
		msb -= maxLsb
	}
	au.poc = msb + lsb
	if refIdc != 0 {
		p.prevPOCMsb, p.prevPOCLsb = msb, lsb
	}
	return nil
}

// startsAccessUnit reports whether a NAL unit of this type begins a new
// access unit when it follows a picture's slices (H.264 7.4.1.2.3).
func startsAccessUnit(typ h264.NALUType, nalu []byte) bool {
	switch typ {
	case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeSEI,
		14, 15, 16, 17, 18:
		return true
	case h264.NALUTypeIDR, h264.NALUTypeNonIDR:
		// first_mb_in_slice == 0 (ue(v) "1") marks a new picture.
		return len(nalu) > 1 && nalu[1]&0x80 != 0
	}
	return false
}

func frameDuration(fps int, sps *h264.SPS) (time.Duration, error) {
	if fps > 0 {
		return time.Second / time.Duration(fps), nil
	}
	if f := sps.FPS(); f > 0 {
		return time.Duration(float64(time.Second) / f), nil
	}
	return time.Second / 25, nil
}

func avccPayload(nalus [][]byte) []byte {
	n := 0
	for _, nalu := range nalus {
		n += 4 + len(nalu)
	}
	out := make([]byte, 0, n)
	for _, nalu := range nalus {
		out = binary.BigEndian.AppendUint32(out, uint32(len(nalu)))
		out = append(out, nalu...)
	}
	return out
}

// trimTrailingZeros drops the zero bytes a 4-byte start code or
// trailing_zero_8bits leave at the end of the previous NAL unit.
func trimTrailingZeros(nalu []byte) []byte {
	for len(nalu) > 0 && nalu[len(nalu)-1] == 0 {
		nalu = nalu[:len(nalu)-1]
	}
	return nalu
}

// bitReader reads an RBSP MSB first; errors stick so callers check once.
type bitReader struct {
	buf []byte
	pos int
	err error
}

func (r *bitReader) bits(n int) uint64 {
	var v uint64
	for range n {
		if r.pos >= len(r.buf)*8 {
			r.err = errors.New("not enough bits")
			return 0
		}
		v = v<<1 | uint64(r.buf[r.pos/8]>>(7-r.pos%8)&1)
		r.pos++
	}
	return v
}

// ue reads an Exp-Golomb unsigned value.
func (r *bitReader) ue() uint64 {
	zeros := 0
	for r.bits(1) == 0 {
		if r.err != nil || zeros == 31 {
			if r.err == nil {
				r.err = errors.New("exp-golomb value too long")
			}
			return 0
		}
		zeros++
	}
	return (1<<zeros - 1) + r.bits(zeros)
}

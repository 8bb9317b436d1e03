package democam

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/opennvr/vms/media"
)

// sample is a video elementary stream ready to loop.
type sample struct {
	forma format.Format
	// params are the parameter sets in the order they go in-band before a
	// keyframe.
	params [][]byte
	aus    []sampleAU
	// loop is the duration of one pass through aus.
	loop time.Duration
}

type sampleAU struct {
	nalus    [][]byte // without parameter sets
	keyframe bool
	dts, pts time.Duration
}

type rtpEncoder interface {
	Encode(au [][]byte) ([]*rtp.Packet, error)
}

// loadSample reads an Annex-B file: H.265 when named *.h265 or *.hevc,
// H.264 otherwise.
func loadSample(path string, fps int, withSDPParams bool) (*sample, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".h265", ".hevc":
		return loadH265(path, fps, withSDPParams)
	}
	return loadH264(path, fps, withSDPParams)
}

func loadH264(path string, fps int, withSDPParams bool) (*sample, error) {
	track, frames, err := media.ReadH264File(path, fps)
	if err != nil {
		return nil, err
	}
	s := &sample{
		forma:  &format.H264{PayloadTyp: 96, PacketizationMode: 1},
		params: [][]byte{track.SPS, track.PPS},
	}
	if withSDPParams {
		s.forma.(*format.H264).SPS, s.forma.(*format.H264).PPS = track.SPS, track.PPS
	}
	for i, f := range frames {
		nalus, err := splitAVCC(f.Payload)
		if err != nil {
			return nil, fmt.Errorf("frame %d: %w", i, err)
		}
		s.aus = append(s.aus, sampleAU{nalus: nalus, keyframe: f.Keyframe, dts: f.DTS, pts: f.PTS})
	}
	return s, s.finish()
}

// loadH265 splits an H.265 stream without picture reordering into access
// units; PTS equals DTS. That covers the committed sample and cameras'
// usual output (no B-frames).
func loadH265(path string, fps int, withSDPParams bool) (*sample, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read h265 file: %w", err)
	}
	var annexb h264.AnnexB // the Annex-B syntax is codec-independent
	if err := annexb.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("%s: annex-b: %w", path, err)
	}
	var vps, sps, pps []byte
	var aus []sampleAU
	var cur *sampleAU
	hasVCL := false
	flush := func() {
		if cur != nil && hasVCL {
			aus = append(aus, *cur)
		}
		cur, hasVCL = nil, false
	}
	for _, nalu := range annexb {
		for len(nalu) > 0 && nalu[len(nalu)-1] == 0 {
			nalu = nalu[:len(nalu)-1]
		}
		if len(nalu) < 3 {
			continue
		}
		typ := h265.NALUType((nalu[0] >> 1) & 0x3f)
		vcl := typ < 32
		// H.265 7.4.2.4.4: these start a new access unit after a picture.
		if hasVCL && ((vcl && nalu[2]&0x80 != 0) || (typ >= 32 && typ <= 35) || typ == 39 ||
			(typ >= 41 && typ <= 44) || (typ >= 48 && typ <= 55)) {
			flush()
		}
		if cur == nil {
			cur = &sampleAU{}
		}
		switch typ {
		case h265.NALUType_VPS_NUT:
			if vps == nil {
				vps = nalu
			}
			continue
		case h265.NALUType_SPS_NUT:
			if sps == nil {
				sps = nalu
			}
			continue
		case h265.NALUType_PPS_NUT:
			if pps == nil {
				pps = nalu
			}
			continue
		case h265.NALUType_AUD_NUT:
			continue
		}
		if vcl {
			hasVCL = true
			if typ >= 16 && typ <= 23 {
				cur.keyframe = true
			}
		}
		cur.nalus = append(cur.nalus, nalu)
	}
	flush()
	if vps == nil || sps == nil || pps == nil {
		return nil, fmt.Errorf("%s: no vps/sps/pps", path)
	}
	first := -1
	for i, au := range aus {
		if au.keyframe {
			first = i
			break
		}
	}
	if first < 0 {
		return nil, fmt.Errorf("%s: no keyframe", path)
	}
	aus = aus[first:]
	dur := time.Second / 25
	if fps > 0 {
		dur = time.Second / time.Duration(fps)
	} else {
		var spsp h265.SPS
		if err := spsp.Unmarshal(sps); err == nil && spsp.VUI != nil && spsp.VUI.TimingInfo != nil &&
			spsp.VUI.TimingInfo.TimeScale > 0 {
			ti := spsp.VUI.TimingInfo
			dur = time.Duration(int64(time.Second) * int64(ti.NumUnitsInTick) / int64(ti.TimeScale))
		}
	}
	for i := range aus {
		aus[i].dts = time.Duration(i) * dur
		aus[i].pts = aus[i].dts
	}
	forma := &format.H265{PayloadTyp: 96}
	if withSDPParams {
		forma.VPS, forma.SPS, forma.PPS = vps, sps, pps
	}
	s := &sample{forma: forma, params: [][]byte{vps, sps, pps}, aus: aus}
	return s, s.finish()
}

// finish computes the loop length from the frame spacing.
func (s *sample) finish() error {
	if len(s.aus) == 0 {
		return errors.New("sample has no frames")
	}
	step := 40 * time.Millisecond
	if len(s.aus) > 1 {
		step = s.aus[1].dts - s.aus[0].dts
	}
	s.loop = s.aus[len(s.aus)-1].dts + step
	return nil
}

func (s *sample) encoder() (rtpEncoder, error) {
	switch f := s.forma.(type) {
	case *format.H264:
		return f.CreateEncoder()
	case *format.H265:
		return f.CreateEncoder()
	}
	return nil, fmt.Errorf("no encoder for %s", s.forma.Codec())
}

func splitAVCC(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, errors.New("truncated avcc length")
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return nil, errors.New("truncated avcc nal unit")
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out, nil
}

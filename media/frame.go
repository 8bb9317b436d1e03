package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Binary frame layout (all integers big-endian), one WebSocket binary
// message per frame:
//
//	offset size field
//	0      1    magic/version (FrameMagic)
//	1      1    track id
//	2      1    flags: bit 0 keyframe; other bits must be zero
//	3      8    DTS, int64 nanoseconds, >= 0
//	11     8    PTS, int64 nanoseconds, >= 0
//	19     8    wall clock, int64 Unix nanoseconds (0 = unknown)
//	27     4    payload length, uint32
//	31     n    payload
const (
	// FrameMagic is the first byte of every version-1 frame. A new frame
	// layout gets a new magic, so an old worker refuses it instead of
	// misreading it.
	FrameMagic byte = 0xF1

	// FrameHeaderSize is the size of the fixed header before the payload.
	FrameHeaderSize = 31

	// MaxFramePayload bounds one access unit. A 4K I-frame at a high
	// bitrate stays well below it; anything larger is a broken or hostile
	// sender, and refusing it bounds the worker's memory per stream.
	MaxFramePayload = 8 << 20

	flagKeyframe byte = 1 << 0
	knownFlags        = flagKeyframe
)

// ErrBadFrame is wrapped by every error UnmarshalFrame and ValidateAVCC
// return; the worker answers it with CloseBadFrame.
var ErrBadFrame = errors.New("bad frame")

// MarshalFrame encodes f for a WebSocket binary message.
func MarshalFrame(f Frame) []byte {
	return AppendFrame(make([]byte, 0, FrameHeaderSize+len(f.Payload)), f)
}

// AppendFrame appends the encoding of f to dst and returns the extended
// slice, so a sender can reuse one buffer for every frame.
//
// A Wall outside the range of int64 Unix nanoseconds (years 1678–2262) and
// the zero time are both encoded as 0, which UnmarshalFrame reads back as the
// zero time.
func AppendFrame(dst []byte, f Frame) []byte {
	var flags byte
	if f.Keyframe {
		flags |= flagKeyframe
	}
	dst = append(dst, FrameMagic, f.Track, flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.DTS))
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.PTS))
	dst = binary.BigEndian.AppendUint64(dst, uint64(wallToUnixNano(f.Wall)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(f.Payload)))
	return append(dst, f.Payload...)
}

// UnmarshalFrame decodes one frame. The returned Payload aliases b: a
// caller that reuses b must copy the payload first.
func UnmarshalFrame(b []byte) (Frame, error) {
	if len(b) < FrameHeaderSize {
		return Frame{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrBadFrame, len(b), FrameHeaderSize)
	}
	if b[0] != FrameMagic {
		return Frame{}, fmt.Errorf("%w: magic 0x%02x, want 0x%02x", ErrBadFrame, b[0], FrameMagic)
	}
	flags := b[2]
	if flags&^knownFlags != 0 {
		return Frame{}, fmt.Errorf("%w: unknown flags 0x%02x", ErrBadFrame, flags)
	}
	dts := int64(binary.BigEndian.Uint64(b[3:]))
	pts := int64(binary.BigEndian.Uint64(b[11:]))
	wall := int64(binary.BigEndian.Uint64(b[19:]))
	n := binary.BigEndian.Uint32(b[27:])
	switch {
	case dts < 0:
		return Frame{}, fmt.Errorf("%w: negative dts %d", ErrBadFrame, dts)
	case pts < 0:
		return Frame{}, fmt.Errorf("%w: negative pts %d", ErrBadFrame, pts)
	case n == 0:
		return Frame{}, fmt.Errorf("%w: empty payload", ErrBadFrame)
	case n > MaxFramePayload:
		return Frame{}, fmt.Errorf("%w: payload %d bytes exceeds %d", ErrBadFrame, n, MaxFramePayload)
	case uint64(len(b)-FrameHeaderSize) != uint64(n):
		return Frame{}, fmt.Errorf("%w: payload length %d, message carries %d", ErrBadFrame, n, len(b)-FrameHeaderSize)
	}
	f := Frame{
		Track:    b[1],
		Keyframe: flags&flagKeyframe != 0,
		DTS:      time.Duration(dts),
		PTS:      time.Duration(pts),
		Payload:  b[FrameHeaderSize:],
	}
	if wall != 0 {
		f.Wall = time.Unix(0, wall).UTC()
	}
	return f, nil
}

func wallToUnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	// UnixNano is undefined outside this range; refuse to send garbage.
	if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
		return 0
	}
	return t.UnixNano()
}

// ValidateAVCC checks that payload is a sequence of NAL units, each
// prefixed by its 4-byte big-endian length, that exactly fills payload.
// It does not look inside the NAL units.
func ValidateAVCC(payload []byte) error {
	if len(payload) == 0 {
		return fmt.Errorf("%w: empty avcc payload", ErrBadFrame)
	}
	for off := 0; off < len(payload); {
		if len(payload)-off < 4 {
			return fmt.Errorf("%w: truncated nalu length at offset %d", ErrBadFrame, off)
		}
		n := uint64(binary.BigEndian.Uint32(payload[off:]))
		off += 4
		if n == 0 {
			return fmt.Errorf("%w: empty nalu at offset %d", ErrBadFrame, off-4)
		}
		if n > uint64(len(payload)-off) {
			return fmt.Errorf("%w: nalu at offset %d claims %d bytes, %d left", ErrBadFrame, off-4, n, len(payload)-off)
		}
		off += int(n)
	}
	return nil
}

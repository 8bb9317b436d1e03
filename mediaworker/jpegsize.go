package mediaworker

import (
	"encoding/binary"
	"errors"
)

// jpegSize reads the frame size from a JPEG's start-of-frame marker without
// decoding (or allocating) anything.
func jpegSize(b []byte) (width, height int, err error) {
	if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
		return 0, 0, errors.New("jpeg: no start of image")
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xff {
			return 0, 0, errors.New("jpeg: bad marker")
		}
		m := b[i+1]
		switch {
		case m == 0xff: // fill byte
			i++
			continue
		case m == 0x01 || (m >= 0xd0 && m <= 0xd7): // no length
			i += 2
			continue
		case m == 0xda: // start of scan: no size before image data
			return 0, 0, errors.New("jpeg: no start of frame")
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return 0, 0, errors.New("jpeg: truncated segment")
		}
		if m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc {
			if n < 7 {
				return 0, 0, errors.New("jpeg: short start of frame")
			}
			height = int(binary.BigEndian.Uint16(b[i+5:]))
			width = int(binary.BigEndian.Uint16(b[i+7:]))
			if width == 0 || height == 0 {
				return 0, 0, errors.New("jpeg: zero size")
			}
			return width, height, nil
		}
		i += 2 + n
	}
	return 0, 0, errors.New("jpeg: no start of frame")
}

package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opennvr/vms/media"
)

// mjpegClockRate is the clock rate announced for MJPEG tracks; the
// timestamps themselves are wall-clock durations since the first image.
const mjpegClockRate = 90000

// defaultMaxJPEGSize bounds one image, so a camera that never sends a
// boundary cannot make the agent buffer without limit.
const defaultMaxJPEGSize = 8 << 20

// MJPEGSource pulls a multipart/x-mixed-replace stream of JPEG images over
// HTTP, the "MJPEG" mode of most IP cameras. Every image is a keyframe.
type MJPEGSource struct {
	// URL is the stream address, http(s)://user:pass@host:port/path; the
	// credentials are sent with basic authentication.
	URL string
	// Client makes the request; nil means a client without overall timeout
	// (the stream is endless) but with a 10 s response-header timeout.
	Client *http.Client
	// Logger receives debug records; nil means slog.Default().
	Logger *slog.Logger
	// MaxImageSize bounds one JPEG; zero means 8 MiB.
	MaxImageSize int
}

// Run implements Source.
func (s *MJPEGSource) Run(ctx context.Context, onTracks func([]media.Track) error, onFrame func(media.Frame) error) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return errors.New("mjpeg: invalid camera url")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("mjpeg: unsupported scheme %q", u.Scheme)
	}
	redacted := RedactURL(s.URL)
	log = log.With("camera", redacted)

	// The request URL carries no user info, so no error from net/http can
	// print it; the credentials travel in the Authorization header only.
	reqURL := *u
	reqURL.User = nil
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reqURL.String(), nil)
	if err != nil {
		return fmt.Errorf("mjpeg: request %s: %w", redacted, scrubError(err, u))
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		req.SetBasicAuth(u.User.Username(), pass)
	}
	client := s.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = 10 * time.Second
		client = &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("mjpeg: get %s: %w", redacted, scrubError(err, u))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mjpeg: get %s: %w", redacted, &httpStatusError{Code: resp.StatusCode, Status: resp.Status})
	}
	mediaType, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") || params["boundary"] == "" {
		return fmt.Errorf("mjpeg: %s: content type %q is not a multipart stream", redacted, resp.Header.Get("Content-Type"))
	}
	maxSize := s.MaxImageSize
	if maxSize <= 0 {
		maxSize = defaultMaxJPEGSize
	}
	pr := newPartReader(resp.Body, params["boundary"], maxSize)

	var start time.Time
	for {
		img, err := pr.next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("mjpeg: %s: stream ended", redacted)
			}
			return fmt.Errorf("mjpeg: %s: %w", redacted, err)
		}
		if len(img) < 2 || img[0] != 0xff || img[1] != 0xd8 {
			log.Debug("mjpeg part is not a jpeg; skipped", "size", len(img))
			continue
		}
		now := time.Now()
		if start.IsZero() {
			start = now
			track := media.Track{ID: 0, Codec: media.CodecMJPEG, ClockRate: mjpegClockRate}
			if err := onTracks([]media.Track{track}); err != nil {
				return err
			}
		}
		ts := now.Sub(start)
		if err := onFrame(media.Frame{Track: 0, Keyframe: true, DTS: ts, PTS: ts, Wall: now, Payload: img}); err != nil {
			return err
		}
	}
}

// partReader splits a multipart/x-mixed-replace body into part bodies.
//
// It is more lenient than mime/multipart, as cameras require: the boundary
// parameter may or may not already start with "--", line ends may be bare
// LF, a part's Content-Length is trusted when present (JPEG bytes may
// contain anything) and otherwise the body ends at the next boundary line.
type partReader struct {
	r        *bufio.Reader
	tp       *textproto.Reader
	delims   [][]byte // accepted boundary lines, without line end
	max      int
	atHeader bool // the boundary line of the next part was consumed already
}

func newPartReader(r io.Reader, boundary string, maxSize int) *partReader {
	br := bufio.NewReaderSize(r, 64<<10)
	delims := [][]byte{[]byte("--" + boundary)}
	if strings.HasPrefix(boundary, "--") {
		delims = append(delims, []byte(boundary))
	}
	return &partReader{r: br, tp: textproto.NewReader(br), delims: delims, max: maxSize}
}

// isDelim reports whether line (without line end) is a boundary line and
// whether it is the closing one.
func (p *partReader) isDelim(line []byte) (delim, closing bool) {
	line = bytes.TrimRight(line, " \t\r\n")
	for _, d := range p.delims {
		if bytes.Equal(line, d) {
			return true, false
		}
		if len(line) == len(d)+2 && bytes.HasPrefix(line, d) && bytes.HasSuffix(line, []byte("--")) {
			return true, true
		}
	}
	return false, false
}

// readLine returns the next line including its end. A line longer than
// the buffer (JPEG data) comes back in pieces without error; callers only
// look for boundaries at the start of a line.
func (p *partReader) readLine() ([]byte, error) {
	line, err := p.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return line, nil
	}
	return line, err
}

// next returns the body of the next part.
func (p *partReader) next() ([]byte, error) {
	if !p.atHeader {
		// Skip the preamble, blank lines and epilogues up to a boundary.
		skipped := 0
		for {
			line, err := p.readLine()
			if err != nil {
				if errors.Is(err, io.EOF) && len(line) == 0 {
					return nil, io.EOF
				}
				if !errors.Is(err, io.EOF) {
					return nil, err
				}
			}
			if d, closing := p.isDelim(line); d {
				if closing {
					return nil, io.EOF
				}
				break
			}
			if err != nil {
				return nil, io.EOF
			}
			skipped += len(line)
			if skipped > p.max {
				return nil, errors.New("no multipart boundary found")
			}
		}
	}
	p.atHeader = false
	hdr, err := p.tp.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("part header: %w", err)
	}
	if cl := hdr.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(strings.TrimSpace(cl))
		if err == nil && n >= 0 {
			if n > p.max {
				return nil, fmt.Errorf("part of %d bytes exceeds the %d-byte limit", n, p.max)
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(p.r, body); err != nil {
				return nil, fmt.Errorf("part body: %w", err)
			}
			return body, nil
		}
	}
	// No usable length: the body runs up to the line end before the next
	// boundary line.
	var body []byte
	lineStart := true
	for {
		line, err := p.readLine()
		if lineStart {
			if d, closing := p.isDelim(line); d && len(line) > 0 && line[len(line)-1] == '\n' {
				// After a closing boundary the next call finds the end.
				p.atHeader = !closing
				body = bytes.TrimSuffix(body, []byte("\n"))
				body = bytes.TrimSuffix(body, []byte("\r"))
				return body, nil
			}
		}
		body = append(body, line...)
		if len(body) > p.max {
			return nil, fmt.Errorf("part exceeds the %d-byte limit", p.max)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		lineStart = len(line) > 0 && line[len(line)-1] == '\n'
	}
}

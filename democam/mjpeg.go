package democam

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// mjpegBoundary separates the parts of the MJPEG stream.
const mjpegBoundary = "democamframe"

// WithoutContentLength leaves the Content-Length header out of MJPEG parts,
// as some cameras do, so readers must find the boundaries themselves.
func WithoutContentLength() Option { return func(o *options) { o.noLength = true } }

// WithFrameRate sets the MJPEG camera's images per second (default 10).
func WithFrameRate(fps int) Option { return func(o *options) { o.jpegFrameRate = fps } }

// MJPEGCamera is a running MJPEG-over-HTTP demo camera.
type MJPEGCamera struct {
	url    string
	srv    *http.Server
	opts   options
	frames [][]byte
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// StartMJPEG serves a multipart/x-mixed-replace stream of small generated
// JPEG images at http://addr/path. The camera stops when ctx ends or Close
// is called.
func StartMJPEG(ctx context.Context, addr, path string, opts ...Option) (*MJPEGCamera, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.jpegFrameRate <= 0 {
		o.jpegFrameRate = 10
	}
	frames, err := testImages(8)
	if err != nil {
		return nil, fmt.Errorf("democam: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("democam: %w", err)
	}
	c := &MJPEGCamera{opts: o, frames: frames, done: make(chan struct{})}
	p := "/" + strings.TrimPrefix(path, "/")
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+p, c.serve)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	u := url.URL{Scheme: "http", Host: ln.Addr().String(), Path: p}
	c.url = u.String()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = c.srv.Serve(ln)
	}()
	stop := context.AfterFunc(ctx, c.Close)
	go func() { <-c.done; stop() }()
	return c, nil
}

// URL returns the stream URL, without credentials.
func (c *MJPEGCamera) URL() string { return c.url }

// Close stops the server and ends the streams it is serving.
func (c *MJPEGCamera) Close() {
	c.once.Do(func() {
		close(c.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := c.srv.Shutdown(ctx); err != nil {
			_ = c.srv.Close()
		}
		c.wg.Wait()
	})
}

func (c *MJPEGCamera) serve(w http.ResponseWriter, r *http.Request) {
	if c.opts.user != "" {
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(c.opts.user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(c.opts.pass)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="democam"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+mjpegBoundary)
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	tick := time.NewTicker(time.Second / time.Duration(c.opts.jpegFrameRate))
	defer tick.Stop()
	for i := 0; ; i++ {
		img := c.frames[i%len(c.frames)]
		var part bytes.Buffer
		fmt.Fprintf(&part, "--%s\r\nContent-Type: image/jpeg\r\n", mjpegBoundary)
		if !c.opts.noLength {
			fmt.Fprintf(&part, "Content-Length: %s\r\n", strconv.Itoa(len(img)))
		}
		part.WriteString("\r\n")
		part.Write(img)
		part.WriteString("\r\n")
		if _, err := w.Write(part.Bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-c.done:
			return
		case <-tick.C:
		}
	}
}

// testImages encodes n small JPEGs of different colours.
func testImages(n int) ([][]byte, error) {
	if n <= 0 {
		return nil, errors.New("no images")
	}
	out := make([][]byte, n)
	for i := range out {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		bg := color.RGBA{R: uint8(32 * i), G: 128, B: uint8(255 - 32*i), A: 255}
		for y := range 48 {
			for x := range 64 {
				c := bg
				if x/8 == i%8 { // a bar that moves from image to image
					c = color.RGBA{R: 255, G: 255, B: 255, A: 255}
				}
				img.SetRGBA(x, y, c)
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 75}); err != nil {
			return nil, err
		}
		out[i] = buf.Bytes()
	}
	return out, nil
}

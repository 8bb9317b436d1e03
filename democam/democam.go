// Package democam provides built-in cameras for tests and `vms dev --demo`:
// an RTSP camera that loops a short H.264 (or H.265) sample in real time, and an MJPEG
// camera that serves generated JPEG images over HTTP.
//
// The RTSP camera behaves like a typical IP camera: SPS/PPS in the SDP and
// in-band before every IDR (each can be switched off to imitate cameras that
// do only one), RTCP sender reports carrying wall-clock time, TCP and UDP
// transports, and optional basic/digest authentication.
package democam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// Option configures a camera.
type Option func(*options)

type options struct {
	user, pass    string
	noInBand      bool
	noSDPParams   bool
	noLength      bool
	fps           int
	log           *slog.Logger
	jpegFrameRate int
}

// WithAuth requires these credentials (basic or digest for RTSP, basic for
// MJPEG).
func WithAuth(user, pass string) Option {
	return func(o *options) { o.user, o.pass = user, pass }
}

// WithoutInBandParams sends SPS/PPS only in the SDP, as many cameras do.
func WithoutInBandParams() Option { return func(o *options) { o.noInBand = true } }

// WithoutSDPParams leaves SPS/PPS out of the SDP: they come only in-band.
func WithoutSDPParams() Option { return func(o *options) { o.noSDPParams = true } }

// WithFPS sets the sample's frame rate; the default takes it from the SPS
// (25 if it has none).
func WithFPS(fps int) Option { return func(o *options) { o.fps = fps } }

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Camera is a running RTSP demo camera.
type Camera struct {
	url    string
	server *gortsplib.Server
	stream *gortsplib.ServerStream
	path   string
	opts   options
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu         sync.Mutex
	transports []string
}

// Start listens on addr (host:port, port 0 picks a free one) and serves the
// Annex-B file sampleFile (H.265 if named *.h265 or *.hevc, else H.264) at
// rtsp://addr/path, looping it in real time with timestamps that keep
// increasing across loops. UDP transport
// uses a free even/odd port pair on the same host. The camera stops when
// ctx ends or Close is called.
func Start(ctx context.Context, addr, path, sampleFile string, opts ...Option) (*Camera, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	smp, err := loadSample(sampleFile, o.fps, !o.noSDPParams)
	if err != nil {
		return nil, fmt.Errorf("democam: %w", err)
	}

	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("democam: address %q: %w", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("democam: %w", err)
	}
	rtpConn, rtcpConn, err := listenUDPPair(host)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("democam: %w", err)
	}
	rtpPort := rtpConn.LocalAddr().(*net.UDPAddr).Port
	prebound := map[string]net.PacketConn{
		strconv.Itoa(rtpPort):     rtpConn,
		strconv.Itoa(rtpPort + 1): rtcpConn,
	}

	c := &Camera{path: "/" + strings.TrimPrefix(path, "/"), opts: o}
	c.server = &gortsplib.Server{
		Handler:        c,
		RTSPAddress:    ln.Addr().String(),
		UDPRTPAddress:  net.JoinHostPort(host, strconv.Itoa(rtpPort)),
		UDPRTCPAddress: net.JoinHostPort(host, strconv.Itoa(rtpPort+1)),
		// The sockets are bound above so that port 0 works and no other
		// process can take them between choosing and binding.
		Listen: func(string, string) (net.Listener, error) { return ln, nil },
		ListenPacket: func(network, address string) (net.PacketConn, error) {
			_, port, _ := net.SplitHostPort(address)
			if pc, ok := prebound[port]; ok {
				delete(prebound, port)
				return pc, nil
			}
			return net.ListenPacket(network, address)
		},
	}
	if err := c.server.Start(); err != nil {
		ln.Close()
		for _, pc := range prebound {
			pc.Close()
		}
		return nil, fmt.Errorf("democam: start rtsp server: %w", err)
	}

	medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{smp.forma}}
	c.stream = &gortsplib.ServerStream{Server: c.server, Desc: &description.Session{Medias: []*description.Media{medi}}}
	if err := c.stream.Initialize(); err != nil {
		c.server.Close()
		return nil, fmt.Errorf("democam: stream: %w", err)
	}

	u := url.URL{Scheme: "rtsp", Host: ln.Addr().String(), Path: c.path}
	c.url = u.String()

	runCtx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := c.loop(runCtx, medi, smp); err != nil && runCtx.Err() == nil {
			o.log.Error("democam stopped", "err", err)
		}
	}()
	context.AfterFunc(runCtx, func() { c.Close() })
	return c, nil
}

// URL returns the camera's stream URL, without credentials.
func (c *Camera) URL() string { return c.url }

// Transports lists the transport of every session that has played the
// stream so far ("TCP" or "UDP"), oldest first.
func (c *Camera) Transports() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.transports...)
}

// Close stops the camera and disconnects its clients.
func (c *Camera) Close() {
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
		c.stream.Close()
		c.server.Close()
	})
}

// loop sends the sample's access units at their decode times, forever.
func (c *Camera) loop(ctx context.Context, medi *description.Media, smp *sample) error {
	enc, err := smp.encoder()
	if err != nil {
		return err
	}
	clock := int64(smp.forma.ClockRate())
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for offset := time.Duration(0); ; offset += smp.loop {
		for _, au := range smp.aus {
			timer.Reset(time.Until(start.Add(offset + au.dts)))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
			nalus := au.nalus
			if au.keyframe && !c.opts.noInBand {
				nalus = append(append([][]byte(nil), smp.params...), nalus...)
			}
			pkts, err := enc.Encode(nalus)
			if err != nil {
				return fmt.Errorf("encode: %w", err)
			}
			pts := offset + au.pts
			// RTP timestamps wrap around every 13 h at 90 kHz, by design.
			ts := uint32(int64(pts) / 1000 * clock / 1_000_000)
			for _, pkt := range pkts {
				pkt.Timestamp = ts
				if err := c.stream.WritePacketRTPWithNTP(medi, pkt, start.Add(pts)); err != nil {
					return fmt.Errorf("write rtp: %w", err)
				}
			}
		}
	}
}

// listenUDPPair binds an even RTP port and the odd RTCP port after it, as
// RTSP requires.
func listenUDPPair(host string) (net.PacketConn, net.PacketConn, error) {
	for range 100 {
		a, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, nil, err
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 || port >= 65535 {
			a.Close()
			continue
		}
		b, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port+1)))
		if err != nil {
			a.Close()
			continue
		}
		return a, b, nil
	}
	return nil, nil, errors.New("no free udp port pair")
}

// authorize checks credentials when the camera has some.
func (c *Camera) authorize(conn *gortsplib.ServerConn, req *base.Request) (*base.Response, error) {
	if c.opts.user == "" || conn.VerifyCredentials(req, c.opts.user, c.opts.pass) {
		return nil, nil
	}
	return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
}

func (c *Camera) pathOK(p string) bool {
	return strings.TrimSuffix(p, "/") == c.path
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (c *Camera) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := c.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	if !c.pathOK(ctx.Path) {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (c *Camera) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := c.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	if !c.pathOK(ctx.Path) {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (c *Camera) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	if t := ctx.Session.SetuppedTransport(); t != nil {
		c.mu.Lock()
		c.transports = append(c.transports, t.String())
		c.mu.Unlock()
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

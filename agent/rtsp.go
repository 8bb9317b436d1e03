package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/pion/rtp"

	"github.com/opennvr/vms/media"
)

// RTSP transports accepted by RTSPSource.Transport.
const (
	// TransportTCP interleaves RTP in the RTSP connection. The default: it
	// crosses NAT and firewalls and loses nothing.
	TransportTCP = "tcp"
	// TransportUDP asks for RTP over UDP and falls back to TCP by itself
	// when the camera refuses UDP or no packet arrives within a few seconds
	// (a firewall in the way).
	TransportUDP = "udp"
	// TransportUDPOnly asks for RTP over UDP without any fallback.
	TransportUDPOnly = "udp-only"
)

// ErrTracksChanged ends a Source's Run when the camera changed its
// parameter sets (resolution, profile) mid-stream: the tracks announced to
// the worker no longer describe the frames, so the stream must restart with
// a new hello.
var ErrTracksChanged = errors.New("camera changed its stream parameters")

// RTSPSource pulls H.264 or H.265 video from an RTSP camera. Audio and
// other media are ignored.
type RTSPSource struct {
	// URL is the camera address, rtsp://user:pass@host:port/path; the
	// credentials are used for basic or digest authentication.
	URL string
	// Transport is TransportTCP (default), TransportUDP or TransportUDPOnly.
	Transport string
	// Logger receives debug and warning records; nil means slog.Default().
	Logger *slog.Logger
	// ReadTimeout bounds every read from the camera; zero means 10 s.
	ReadTimeout time.Duration
}

// Run implements Source.
func (s *RTSPSource) Run(ctx context.Context, onTracks func([]media.Track) error, onFrame func(media.Frame) error) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	rawURL, err := url.Parse(s.URL)
	if err != nil {
		return errors.New("rtsp: invalid camera url")
	}
	redacted := RedactURL(s.URL)
	log = log.With("camera", redacted)

	u, err := base.ParseURL(s.URL)
	if err != nil {
		return fmt.Errorf("rtsp: parse camera url %s: %w", redacted, scrubError(err, rawURL))
	}

	c := &gortsplib.Client{
		Scheme:      u.Scheme,
		Host:        u.Host,
		ReadTimeout: s.ReadTimeout,
		OnTransportSwitch: func(err error) {
			log.Warn("rtsp transport switched", "reason", scrubError(err, rawURL))
		},
		OnPacketsLost: func(lost uint64) {
			log.Debug("rtsp packets lost", "count", lost)
		},
		OnDecodeError: func(err error) {
			log.Debug("rtsp decode error", "err", scrubError(err, rawURL))
		},
	}
	switch strings.ToLower(s.Transport) {
	case "", TransportTCP:
		t := gortsplib.TransportTCP
		c.Transport = &t
	case TransportUDP:
		// nil: gortsplib tries UDP first, then TCP.
	case TransportUDPOnly:
		t := gortsplib.TransportUDP
		c.Transport = &t
	default:
		return fmt.Errorf("rtsp: unknown transport %q", s.Transport)
	}
	if isLoopbackHost(u.Hostname()) {
		// UDP from a loopback camera arrives on loopback: do not open
		// ports on every interface for it.
		c.ListenPacket = func(network, address string) (net.PacketConn, error) {
			_, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.ListenPacket(network, net.JoinHostPort(loopbackFor(u.Hostname()), port))
		}
	}

	if err := c.Start2(); err != nil {
		return fmt.Errorf("rtsp: connect %s: %w", redacted, scrubError(err, rawURL))
	}
	// Close unblocks Wait and every pending request when ctx ends.
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	defer c.Close()

	ctxErr := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}

	desc, _, err := c.Describe(u)
	if err != nil {
		return ctxErr(fmt.Errorf("rtsp: describe %s: %w", redacted, scrubError(err, rawURL)))
	}

	var (
		medi  *description.Media
		dec   videoStream
		codec string
	)
	var h264f *format.H264
	var h265f *format.H265
	if m := desc.FindFormat(&h264f); m != nil {
		medi, codec = m, media.CodecH264
		d, err := newH264Stream(h264f)
		if err != nil {
			return err
		}
		dec = d
	} else if m := desc.FindFormat(&h265f); m != nil {
		medi, codec = m, media.CodecH265
		d, err := newH265Stream(h265f)
		if err != nil {
			return err
		}
		dec = d
	} else {
		return fmt.Errorf("rtsp: %s offers neither H.264 nor H.265 video", redacted)
	}

	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return ctxErr(fmt.Errorf("rtsp: setup %s: %w", redacted, scrubError(err, rawURL)))
	}

	// The packet callback runs on gortsplib's reader goroutine; its first
	// failure is handed back to this goroutine, which closes the client.
	fail := make(chan error, 1)
	failed := false
	st := &frameStamper{clockRate: uint32(dec.clockRate())}
	const track = 0
	announced := false
	var dropped int

	c.OnPacketRTP(medi, dec.format(), func(pkt *rtp.Packet) {
		if failed {
			return
		}
		pts, ok := c.PacketPTS2(medi, pkt)
		if !ok {
			return
		}
		au, err := dec.decodeRTP(pkt)
		if err != nil {
			if !isBenignDepacketizeError(err) {
				log.Debug("rtsp depacketize", "err", err)
			}
			return
		}
		wall, ok := c.PacketNTP(medi, pkt)
		if !ok {
			wall = time.Now()
		}
		raw, err := dec.accessUnit(au, pts)
		if err != nil {
			dropped++
			if dropped == 1 || dropped%100 == 0 {
				log.Debug("rtsp access unit dropped", "err", err, "dropped", dropped)
			}
			return
		}
		if raw == nil {
			return
		}
		report := func(err error) {
			failed = true
			select {
			case fail <- err:
			default:
			}
		}
		if !announced {
			if err := onTracks([]media.Track{dec.track()}); err != nil {
				report(err)
				return
			}
			announced = true
		} else if dec.paramsChanged() {
			report(ErrTracksChanged)
			return
		}
		if err := onFrame(st.frame(track, raw, wall)); err != nil {
			report(err)
		}
	})

	if _, err := c.Play(nil); err != nil {
		return ctxErr(fmt.Errorf("rtsp: play %s: %w", redacted, scrubError(err, rawURL)))
	}
	log.Debug("rtsp playing", "codec", codec)

	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Wait() }()
	select {
	case err := <-fail:
		c.Close()
		<-waitErr
		return err
	case err := <-waitErr:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("rtsp: %s: %w", redacted, scrubError(err, rawURL))
	}
}

// frameStamper makes timestamps relative to the first frame and converts
// them from clock ticks to durations. A frame's wall clock follows its DTS
// from the first frame's capture time, so consecutive segments of a stream
// (and a stream resumed on another worker) start exactly where the previous
// ended: packet-arrival jitter makes neither overlaps nor gaps. When the
// camera's clock and ours part by more than maxWallDrift (a drifting clock,
// a stall), the anchor moves to the capture time.
type frameStamper struct {
	clockRate uint32
	started   bool
	base      int64
	baseWall  time.Time
}

// maxWallDrift is how far a frame's DTS-derived wall clock may stray from
// its capture time before the anchor is moved.
const maxWallDrift = time.Second

func (s *frameStamper) frame(track uint8, raw *rawFrame, wall time.Time) media.Frame {
	if !s.started {
		s.started = true
		s.base = raw.dts
		s.baseWall = wall
	}
	// The wire format refuses negative timestamps; only a camera whose
	// clock jumps backwards produces them.
	dts := max(0, media.SignedTicksToDuration(raw.dts-s.base, s.clockRate))
	stamped := s.baseWall.Add(dts)
	if d := wall.Sub(stamped); d > maxWallDrift || d < -maxWallDrift {
		s.baseWall, stamped = wall.Add(-dts), wall
	}
	return media.Frame{
		Track:    track,
		Keyframe: raw.keyframe,
		DTS:      dts,
		PTS:      max(0, media.SignedTicksToDuration(raw.pts-s.base, s.clockRate)),
		Wall:     stamped,
		Payload:  raw.payload,
	}
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func loopbackFor(host string) string {
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return "::1"
	}
	return "127.0.0.1"
}

// videoStream turns RTP packets of one video format into frames.
type videoStream interface {
	format() format.Format
	clockRate() int
	decodeRTP(pkt *rtp.Packet) ([][]byte, error)
	// accessUnit returns the frame of an access unit, or nil when the unit
	// carries no picture or comes before the first keyframe.
	accessUnit(au [][]byte, pts int64) (*rawFrame, error)
	// track describes the stream with its current parameter sets.
	track() media.Track
	// paramsChanged reports whether the parameter sets differ from the
	// ones the last track() call returned.
	paramsChanged() bool
}

// rtph264 and rtph265 share their "normal while depacketizing" errors.
var benignDepacketizeErrors = []error{
	rtph264.ErrMorePacketsNeeded,
	rtph264.ErrNonStartingPacketAndNoPrevious,
	rtph265.ErrMorePacketsNeeded,
	rtph265.ErrNonStartingPacketAndNoPrevious,
}

func isBenignDepacketizeError(err error) bool {
	for _, b := range benignDepacketizeErrors {
		if errors.Is(err, b) {
			return true
		}
	}
	return false
}

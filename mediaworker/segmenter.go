package mediaworker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/recording"
)

// Segmenter defaults.
const (
	DefaultSegmentTarget    = recording.DefaultSegmentLength
	DefaultFragmentDuration = time.Second
	DefaultMaxGap           = 10 * time.Second
)

// Errors WriteFrame returns for a frame it drops; the stream can go on.
var (
	ErrUnknownTrack    = errors.New("frame for unknown track")
	ErrNonMonotonicDTS = errors.New("dts does not increase")
	ErrBadPayload      = errors.New("bad frame payload")
	ErrNoParameters    = errors.New("codec parameters unknown")
	ErrSegmenterClosed = errors.New("segmenter closed")
)

// Segment is a finished recording segment file.
type Segment struct {
	Path     string        // final path inside SegmenterConfig.Dir
	Start    time.Time     // wall clock of the first frame
	End      time.Time     // Start + Duration
	Duration time.Duration // media duration of the first track
	Size     int64         // bytes
	Codec    string        // codec of the first track (media.Codec*)
}

// SegmenterConfig configures a Segmenter.
type SegmenterConfig struct {
	// Dir receives the segment files. Files being written are hidden
	// (".segment-*.partial", with a sidecar, see SessionID) and renamed to
	// "<start>.mp4" when complete, with <start> the UTC wall clock
	// "20060102T150405.000Z", so names sort by time.
	Dir string
	// Tracks are the stream's tracks, as announced in the Hello. The first
	// track leads: segments are cut on its keyframes and its timeline
	// defines a segment's start and duration.
	Tracks []media.Track
	// Target is the segment length; a segment is cut at the first keyframe
	// at or after it. Default DefaultSegmentTarget.
	Target time.Duration
	// FragmentDuration is how much media is buffered before it is appended
	// to the file as one fMP4 fragment. Default DefaultFragmentDuration.
	FragmentDuration time.Duration
	// MaxGap: a DTS jump of the first track larger than this ends the
	// segment (the next starts at the next keyframe), so a stalled camera
	// does not become one frozen frame lasting minutes. Default
	// DefaultMaxGap.
	MaxGap time.Duration
	// SessionID and ChannelID name the stream in a sidecar written beside
	// each file being written ("<partial>.json", with the segment's start),
	// so that a worker starting after a crash can salvage the file (see
	// Spool.WorkDir). Without a SessionID no sidecar is written.
	SessionID, ChannelID string
	// OnSegment is called, from WriteFrame or Close, with each segment once
	// its file is complete — after the frame that ended it has started the
	// next segment, so an error here loses no media. The error is returned
	// by that WriteFrame or Close.
	OnSegment func(Segment) error
}

// Segmenter cuts one stream into self-contained fMP4 segment files (init +
// fragments). Every segment starts with a keyframe of the first track, and
// a change of parameter sets (in-band SPS/PPS/VPS differing from the
// current ones, or a new MJPEG size) starts a new segment with a new init.
// Fragments are appended to the file as they fill, so memory per stream
// stays around one fragment.
//
// Keyframes are recognised from the bitstream (H.264 IDR, H.265 IRAP, every
// JPEG), not from Frame.Keyframe: a segment starting on anything else would
// not decode. Frames before the first keyframe are dropped.
//
// Frames of other tracks are written from their first keyframe at or after
// the segment start. A track whose parameters are still unknown when the
// segment's first fragment is written (an MJPEG track that has not sent an
// image yet) joins at the next segment.
//
// WriteFrame keeps no reference to the frame's payload after it returns.
// A Segmenter is not safe for concurrent use.
type Segmenter struct {
	cfg      SegmenterConfig
	tracks   []*segTrack
	byID     map[uint8]*segTrack
	buf      seekablebuffer.Buffer
	seg      *openSegment
	finished []Segment // complete, not yet passed to OnSegment
	closed   bool
}

// NewSegmenter checks cfg and returns a Segmenter writing into cfg.Dir.
func NewSegmenter(cfg SegmenterConfig) (*Segmenter, error) {
	if cfg.Dir == "" {
		return nil, errors.New("segmenter: empty dir")
	}
	if len(cfg.Tracks) == 0 {
		return nil, errors.New("segmenter: no tracks")
	}
	if cfg.Target <= 0 {
		cfg.Target = DefaultSegmentTarget
	}
	if cfg.FragmentDuration <= 0 {
		cfg.FragmentDuration = DefaultFragmentDuration
	}
	if cfg.MaxGap <= 0 {
		cfg.MaxGap = DefaultMaxGap
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("segmenter: %w", err)
	}
	s := &Segmenter{cfg: cfg, byID: make(map[uint8]*segTrack, len(cfg.Tracks))}
	for i, mt := range cfg.Tracks {
		switch mt.Codec {
		case media.CodecH264, media.CodecH265, media.CodecMJPEG:
		default:
			return nil, fmt.Errorf("segmenter: track %d: unsupported codec %q", mt.ID, mt.Codec)
		}
		if _, dup := s.byID[mt.ID]; dup {
			return nil, fmt.Errorf("segmenter: duplicate track id %d", mt.ID)
		}
		t := &segTrack{
			media:     mt,
			mp4ID:     i + 1,
			timescale: mt.TimeScale(),
			latest: codecParams{
				vps: bytes.Clone(mt.VPS),
				sps: bytes.Clone(mt.SPS),
				pps: bytes.Clone(mt.PPS),
			},
		}
		s.tracks = append(s.tracks, t)
		s.byID[mt.ID] = t
	}
	return s, nil
}

// WriteFrame adds one frame. Errors wrapping ErrUnknownTrack,
// ErrNonMonotonicDTS, ErrBadPayload or ErrNoParameters mean the frame was
// dropped and the stream can continue; other errors come from the file
// system or OnSegment.
func (s *Segmenter) WriteFrame(f media.Frame) error {
	if s.closed {
		return ErrSegmenterClosed
	}
	t, ok := s.byID[f.Track]
	if !ok {
		return fmt.Errorf("%w: %d", ErrUnknownTrack, f.Track)
	}
	if f.DTS < 0 {
		return fmt.Errorf("%w: negative dts", ErrBadPayload)
	}
	if err := t.inspect(f.Payload); err != nil {
		return err
	}
	if len(t.scratch) == 0 {
		return nil // only parameter sets; t.latest has them
	}
	var err error
	if t == s.tracks[0] {
		err = s.writeLeader(t, f)
	} else {
		err = s.writeOther(t, f)
	}
	return errors.Join(err, s.notify())
}

// notify reports finished segments. It runs after the frame that ended
// them has started the next segment, so a failing callback loses no media.
func (s *Segmenter) notify() error {
	var errs []error
	for _, seg := range s.finished {
		if s.cfg.OnSegment != nil {
			errs = append(errs, s.cfg.OnSegment(seg))
		}
	}
	clear(s.finished)
	s.finished = s.finished[:0]
	return errors.Join(errs...)
}

func (s *Segmenter) writeLeader(t *segTrack, f media.Frame) error {
	if s.seg != nil {
		if f.DTS <= t.held.dts {
			return fmt.Errorf("%w: %v after %v", ErrNonMonotonicDTS, f.DTS, t.held.dts)
		}
		if f.DTS-t.held.dts > s.cfg.MaxGap {
			if err := s.finishSegment(0, false); err != nil {
				return err
			}
		}
	}
	if s.seg != nil {
		if err := s.appendHeld(t, f.DTS); err != nil {
			return err
		}
		if s.seg.keyAt > 0 && len(t.samples) == 1 && !t.samples[0].IsNonSyncSample {
			// A keyframe (not the segment's first) is written alone as
			// soon as its duration is known, so that a crash finds it on
			// disk and the salvage cuts before it, not a GOP earlier.
			if err := s.flushFragment(); err != nil {
				return err
			}
		}
		if !t.latest.equal(t.params) {
			s.seg.cutNext = true
		}
		if t.scratchKey && (s.seg.cutNext || f.DTS-s.seg.startDTS >= s.cfg.Target) {
			if err := s.finishSegment(f.DTS, true); err != nil {
				return err
			}
		}
	}
	if s.seg == nil {
		if !t.scratchKey {
			return nil // a segment must start with a keyframe
		}
		if err := s.openSegment(f); err != nil {
			return err
		}
	}
	if t.scratchKey {
		// A keyframe starts a fragment, so that the file can be cut just
		// before it (CloseBeforeLastKeyframe, and the salvage).
		if len(t.samples) > 0 {
			if err := s.flushFragment(); err != nil {
				return err
			}
		}
		s.seg.keyAt, s.seg.keyNext = s.seg.size, t.next
	}
	t.hold(f)
	if s.fragmentFull(t) {
		return s.flushFragment()
	}
	return nil
}

func (s *Segmenter) writeOther(t *segTrack, f media.Frame) error {
	if s.seg == nil || t.paused || f.DTS < s.seg.startDTS {
		return nil
	}
	if !t.active {
		if _, ok := t.codec(); !ok || s.seg.initWritten {
			return nil
		}
		t.active, t.params = true, t.latest
	}
	if !t.latest.equal(t.params) {
		// The init already describes this track; the new parameters must
		// wait for a new segment, which we ask for.
		t.paused = true
		s.seg.cutNext = true
		return nil
	}
	if !t.hasHeld {
		if !t.scratchKey {
			return nil
		}
		t.hold(f)
		return nil
	}
	if f.DTS <= t.held.dts {
		return fmt.Errorf("%w: track %d: %v after %v", ErrNonMonotonicDTS, t.media.ID, f.DTS, t.held.dts)
	}
	if err := s.appendHeld(t, f.DTS); err != nil {
		return err
	}
	t.hold(f)
	return nil
}

// Close ends the open segment (its last frame gets the previous frame's
// duration) and stops the Segmenter. Use it when the stream really ended;
// when the agent will resume it, use CloseBeforeLastKeyframe.
func (s *Segmenter) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.seg != nil {
		err = s.finishSegment(0, false)
	}
	return errors.Join(err, s.notify())
}

// CloseBeforeLastKeyframe ends the open segment just before its last
// keyframe of the first track, dropping that keyframe and every frame
// after it, and stops the Segmenter. It is for a stream whose agent will
// resume it on a new connection from the last keyframe it sent, which is
// this one or a later one: what is dropped here is replayed there, and
// nothing is recorded twice. A segment left with no frame is removed.
func (s *Segmenter) CloseBeforeLastKeyframe() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.seg == nil {
		return nil
	}
	seg := s.seg
	if seg.keyAt == 0 {
		s.abortSegment() // the segment's first keyframe is its last
		return nil
	}
	for _, t := range s.tracks {
		t.hasHeld = false
		t.samples, t.arena = t.samples[:0], t.arena[:0]
	}
	if err := seg.file.Truncate(seg.keyAt); err != nil {
		s.abortSegment()
		return fmt.Errorf("cut segment: %w", err)
	}
	seg.size = seg.keyAt
	leader := s.tracks[0]
	return errors.Join(s.publishSegment(media.TicksToDuration(seg.keyNext, leader.timescale)), s.notify())
}

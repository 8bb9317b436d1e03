// Package mediaworker is the NVR media worker: it accepts camera streams from
// agents over WebSocket, cuts them into fMP4 recording segments, spools and
// uploads the segments and tells the control plane about them.
package mediaworker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/recording"
)

// Segmenter defaults.
const (
	DefaultSegmentTarget    = recording.DefaultSegmentLength
	DefaultFragmentDuration = time.Second
	DefaultMaxGap           = 10 * time.Second

	// maxFragmentBytes flushes a fragment early so a very high bitrate
	// cannot make one fragment (held in memory) unbounded.
	maxFragmentBytes = 4 << 20
	// fallbackFrameDuration is the last sample's duration when no earlier
	// frame tells us the frame rate.
	fallbackFrameDuration = 40 * time.Millisecond
	// segmentTimeLayout names segment files; it sorts lexically by time.
	segmentTimeLayout = "20060102T150405.000Z"
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
	// (".segment-*.partial") and renamed to "<start>.mp4" when complete,
	// with <start> the UTC wall clock "20060102T150405.000Z", so names sort
	// by time.
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

type openSegment struct {
	file     *os.File
	tmpPath  string
	start    time.Time     // wall clock of the first frame
	startDTS time.Duration // DTS of the first frame; decode time 0
	seq      uint32
	size     int64
	cutNext  bool // cut at the next keyframe of the first track
	// The init is written with the first fragment, so that tracks whose
	// parameters arrive just after the first keyframe (an MJPEG track's
	// first image) still make it into the segment.
	initWritten bool
}

// codecParams are what a segment's init needs for one track.
type codecParams struct {
	vps, sps, pps []byte
	width, height int // MJPEG
}

func (p codecParams) equal(o codecParams) bool {
	return bytes.Equal(p.vps, o.vps) && bytes.Equal(p.sps, o.sps) && bytes.Equal(p.pps, o.pps) &&
		p.width == o.width && p.height == o.height
}

type segTrack struct {
	media     media.Track
	mp4ID     int
	timescale uint32

	latest codecParams // newest parameters seen (Hello, then in-band)
	params codecParams // parameters in the open segment's init
	active bool        // the open segment's init has this track
	paused bool        // parameters changed mid-segment; wait for the next one

	// The newest frame waits here until the next one gives its duration.
	hasHeld bool
	held    heldFrame
	heldBuf []byte
	// The frame being written: its sample data and whether it is a
	// keyframe. The bitstream decides, not Frame.Keyframe: a segment that
	// starts on a non-IDR "keyframe" would not decode.
	scratch    []byte
	scratchKey bool

	// Samples of the fragment being built; payloads live in arena.
	samples  []fmp4.Sample
	ptrs     []*fmp4.Sample
	arena    []byte
	fragBase uint64 // decode time of samples[0]
	next     uint64 // decode time after the last sample
	lastDur  uint32
}

type heldFrame struct {
	dts, pts time.Duration
	key      bool
	wall     time.Time
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
// duration) and stops the Segmenter.
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

// inspect validates f's payload and leaves in t.scratch what goes into the
// sample: for H.264/H.265 the NAL units without parameter sets and
// delimiters (which it records in t.latest).
func (t *segTrack) inspect(payload []byte) error {
	t.scratch, t.scratchKey = t.scratch[:0], false
	if len(payload) == 0 {
		return fmt.Errorf("%w: empty", ErrBadPayload)
	}
	if t.media.Codec == media.CodecMJPEG {
		w, h, err := jpegSize(payload)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadPayload, err)
		}
		t.latest.width, t.latest.height = w, h
		t.scratch = append(t.scratch, payload...)
		t.scratchKey = true
		return nil
	}
	if err := media.ValidateAVCC(payload); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	for off := 0; off < len(payload); {
		n := int(binary.BigEndian.Uint32(payload[off:]))
		nalu := payload[off+4 : off+4+n]
		off += 4 + n
		if dst := t.paramSlot(nalu); dst != nil {
			if !bytes.Equal(*dst, nalu) {
				// A broken SPS would fail every init from now on; refuse it.
				if err := t.checkSPS(nalu); err != nil {
					return fmt.Errorf("%w: in-band sps: %w", ErrBadPayload, err)
				}
				*dst = bytes.Clone(nalu)
			}
			continue
		}
		if t.isDelimiter(nalu) {
			continue
		}
		t.scratch = binary.BigEndian.AppendUint32(t.scratch, uint32(n))
		t.scratch = append(t.scratch, nalu...)
		t.scratchKey = t.scratchKey || t.isRandomAccess(nalu)
	}
	return nil
}

// paramSlot returns where an in-band parameter set NAL unit belongs, or
// nil for other NAL units.
func (t *segTrack) paramSlot(nalu []byte) *[]byte {
	if t.media.Codec == media.CodecH264 {
		switch nalu[0] & 0x1f {
		case 7:
			return &t.latest.sps
		case 8:
			return &t.latest.pps
		}
		return nil
	}
	switch (nalu[0] >> 1) & 0x3f {
	case 32:
		return &t.latest.vps
	case 33:
		return &t.latest.sps
	case 34:
		return &t.latest.pps
	}
	return nil
}

// checkSPS parses nalu if it is an SPS; other parameter sets pass.
func (t *segTrack) checkSPS(nalu []byte) error {
	if t.media.Codec == media.CodecH264 {
		if nalu[0]&0x1f != 7 {
			return nil
		}
		var sps h264.SPS
		return sps.Unmarshal(nalu)
	}
	if (nalu[0]>>1)&0x3f != 33 {
		return nil
	}
	var sps h265.SPS
	return sps.Unmarshal(nalu)
}

// isRandomAccess reports an IDR (H.264) or IRAP (H.265: BLA, IDR, CRA)
// picture, one a decoder can start from.
func (t *segTrack) isRandomAccess(nalu []byte) bool {
	if t.media.Codec == media.CodecH264 {
		return nalu[0]&0x1f == 5
	}
	typ := (nalu[0] >> 1) & 0x3f
	return typ >= 16 && typ <= 21
}

func (t *segTrack) isDelimiter(nalu []byte) bool {
	if t.media.Codec == media.CodecH264 {
		return nalu[0]&0x1f == 9
	}
	return (nalu[0]>>1)&0x3f == 35
}

// codec returns the init codec for the newest parameters, if complete.
func (t *segTrack) codec() (mp4.Codec, bool) {
	return t.codecFor(t.latest)
}

func (t *segTrack) codecFor(p codecParams) (mp4.Codec, bool) {
	switch t.media.Codec {
	case media.CodecH264:
		if p.sps == nil || p.pps == nil {
			return nil, false
		}
		return &mp4.CodecH264{SPS: p.sps, PPS: p.pps}, true
	case media.CodecH265:
		if p.vps == nil || p.sps == nil || p.pps == nil {
			return nil, false
		}
		return &mp4.CodecH265{VPS: p.vps, SPS: p.sps, PPS: p.pps}, true
	case media.CodecMJPEG:
		if p.width == 0 || p.height == 0 {
			return nil, false
		}
		return &mp4.CodecMJPEG{Width: p.width, Height: p.height}, true
	}
	return nil, false
}

// hold makes f (whose sample data is in t.scratch) the held frame.
func (t *segTrack) hold(f media.Frame) {
	t.heldBuf, t.scratch = t.scratch, t.heldBuf
	t.held = heldFrame{dts: f.DTS, pts: f.PTS, key: t.scratchKey, wall: f.Wall}
	t.hasHeld = true
}

// appendHeld moves the held frame into the fragment; nextDTS is the DTS of
// the frame after it, or <= held DTS when unknown (end of segment).
func (s *Segmenter) appendHeld(t *segTrack, nextDTS time.Duration) error {
	if !t.hasHeld {
		return nil
	}
	start := s.seg.startDTS
	dts := ticks(t.held.dts-start, t.timescale)
	var dur uint64
	if nextDTS > t.held.dts {
		dur = ticks(nextDTS-start, t.timescale) - dts
	}
	if dur == 0 {
		dur = uint64(t.lastDur)
		if dur == 0 {
			dur = ticks(fallbackFrameDuration, t.timescale)
		}
	}
	if dur > 1<<32-1 {
		return fmt.Errorf("%w: sample duration %d ticks", ErrNonMonotonicDTS, dur)
	}
	if len(t.samples) == 0 {
		t.fragBase = dts
	}
	off := len(t.arena)
	t.arena = append(t.arena, t.heldBuf...)
	t.samples = append(t.samples, fmp4.Sample{
		Duration:        uint32(dur),
		PTSOffset:       int32(sticks(t.held.pts-start, t.timescale) - int64(dts)),
		IsNonSyncSample: !t.held.key,
		Payload:         t.arena[off:len(t.arena):len(t.arena)],
	})
	t.next = dts + dur
	t.lastDur = uint32(dur)
	t.hasHeld = false
	return nil
}

func (s *Segmenter) fragmentFull(t *segTrack) bool {
	if len(t.samples) == 0 {
		return false
	}
	if t.next-t.fragBase >= ticks(s.cfg.FragmentDuration, t.timescale) {
		return true
	}
	n := 0
	for _, o := range s.tracks {
		n += len(o.arena)
	}
	return n >= maxFragmentBytes
}

func (s *Segmenter) openSegment(f media.Frame) error {
	leader := s.tracks[0]
	if _, ok := leader.codec(); !ok {
		return fmt.Errorf("%w: track %d", ErrNoParameters, leader.media.ID)
	}
	for _, t := range s.tracks {
		_, ok := t.codec()
		t.active, t.paused, t.hasHeld = ok, false, false
		t.samples, t.arena = t.samples[:0], t.arena[:0]
		if ok {
			t.params = t.latest
		}
	}
	file, err := os.CreateTemp(s.cfg.Dir, ".segment-*.partial")
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	start := f.Wall
	if start.IsZero() {
		start = time.Now()
	}
	s.seg = &openSegment{file: file, tmpPath: file.Name(), start: start.UTC(), startDTS: f.DTS, seq: 1}
	return nil
}

func (s *Segmenter) writeInit() error {
	var init fmp4.Init
	for _, t := range s.tracks {
		if !t.active {
			continue
		}
		c, _ := t.codecFor(t.params)
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: t.mp4ID, TimeScale: t.timescale, Codec: c})
	}
	s.buf.Reset()
	if err := init.Marshal(&s.buf); err != nil {
		s.abortSegment()
		return fmt.Errorf("marshal init: %w", err)
	}
	s.seg.initWritten = true
	return s.write(s.buf.Bytes())
}

func (s *Segmenter) write(b []byte) error {
	n, err := s.seg.file.Write(b)
	s.seg.size += int64(n)
	if err != nil {
		s.abortSegment()
		return fmt.Errorf("write segment: %w", err)
	}
	return nil
}

func (s *Segmenter) flushFragment() error {
	if !s.seg.initWritten {
		if err := s.writeInit(); err != nil {
			return err
		}
	}
	part := fmp4.Part{SequenceNumber: s.seg.seq}
	for _, t := range s.tracks {
		if !t.active || len(t.samples) == 0 {
			continue
		}
		t.ptrs = t.ptrs[:0]
		for i := range t.samples {
			t.ptrs = append(t.ptrs, &t.samples[i])
		}
		part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: t.mp4ID, BaseTime: t.fragBase, Samples: t.ptrs})
	}
	if len(part.Tracks) == 0 {
		return nil
	}
	s.buf.Reset()
	if err := part.Marshal(&s.buf); err != nil {
		s.abortSegment()
		return fmt.Errorf("marshal fragment: %w", err)
	}
	if err := s.write(s.buf.Bytes()); err != nil {
		return err
	}
	s.seg.seq++
	for _, t := range s.tracks {
		t.samples, t.arena = t.samples[:0], t.arena[:0]
	}
	return nil
}

// finishSegment writes out the held frames and the last fragment and
// publishes the file. endDTS is where the next segment starts, if known.
func (s *Segmenter) finishSegment(endDTS time.Duration, known bool) error {
	for _, t := range s.tracks {
		if !t.active {
			continue
		}
		next := time.Duration(-1)
		if known {
			next = endDTS
		}
		if err := s.appendHeld(t, next); err != nil {
			s.abortSegment()
			return err
		}
	}
	if err := s.flushFragment(); err != nil {
		return err
	}
	seg := s.seg
	leader := s.tracks[0]
	dur := tickDuration(leader.next, leader.timescale)
	s.seg = nil
	for _, t := range s.tracks {
		t.active = false
	}
	if err := seg.file.Sync(); err != nil {
		seg.file.Close()
		os.Remove(seg.tmpPath)
		return fmt.Errorf("sync segment: %w", err)
	}
	if err := seg.file.Close(); err != nil {
		os.Remove(seg.tmpPath)
		return fmt.Errorf("close segment: %w", err)
	}
	path, err := s.publish(seg.tmpPath, seg.start)
	if err != nil {
		os.Remove(seg.tmpPath)
		return err
	}
	s.finished = append(s.finished, Segment{
		Path:     path,
		Start:    seg.start,
		End:      seg.start.Add(dur),
		Duration: dur,
		Size:     seg.size,
		Codec:    leader.media.Codec,
	})
	return nil
}

// publish renames the finished temp file to its time-sorted name, never
// replacing an existing segment.
func (s *Segmenter) publish(tmp string, start time.Time) (string, error) {
	base := start.Format(segmentTimeLayout)
	path := filepath.Join(s.cfg.Dir, base+".mp4")
	for i := 1; ; i++ {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		path = filepath.Join(s.cfg.Dir, fmt.Sprintf("%s-%d.mp4", base, i))
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("publish segment: %w", err)
	}
	return path, nil
}

// abortSegment drops the open segment after a write failure; the next
// keyframe starts a fresh one.
func (s *Segmenter) abortSegment() {
	if s.seg == nil {
		return
	}
	s.seg.file.Close()
	os.Remove(s.seg.tmpPath)
	s.seg = nil
	for _, t := range s.tracks {
		t.active, t.hasHeld = false, false
		t.samples, t.arena = t.samples[:0], t.arena[:0]
	}
}

// ticks converts a non-negative duration to timescale units without
// overflowing for long durations.
func ticks(d time.Duration, timescale uint32) uint64 {
	if d < 0 {
		return 0
	}
	ts := uint64(timescale)
	return uint64(d/time.Second)*ts + uint64(d%time.Second)*ts/uint64(time.Second)
}

func sticks(d time.Duration, timescale uint32) int64 {
	if d < 0 {
		return -int64(ticks(-d, timescale))
	}
	return int64(ticks(d, timescale))
}

func tickDuration(n uint64, timescale uint32) time.Duration {
	ts := uint64(timescale)
	return time.Duration(n/ts)*time.Second + time.Duration(n%ts*uint64(time.Second)/ts)
}

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

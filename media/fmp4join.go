package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

// MaxJoinBoxSize bounds one top-level MP4 box read by Join (a fragment's
// moof or mdat). Segments written by the media worker keep fragments to a
// second or two; a larger box means a file Join should not buffer.
const MaxJoinBoxSize = 64 << 20

var (
	// ErrIncompatibleSegments: the segments' init sections differ (codec
	// parameters, tracks or timescales), so they cannot share one init.
	ErrIncompatibleSegments = errors.New("segments have different codec parameters")
	// ErrNoMedia: no frame of the segments falls in the requested range.
	ErrNoMedia = errors.New("no media in range")
	// ErrBadSegment: a segment is not a fragmented MP4 Join can read.
	ErrBadSegment = errors.New("bad segment")
)

// JoinSegment is one recording segment to join.
type JoinSegment struct {
	// Start is the wall-clock time of decode time zero in the file, which
	// for the media worker's segments is the time of the first frame.
	Start time.Time
	// Open opens the segment for reading; Join closes it. Join opens only
	// the segments it needs, each at most once.
	Open func() (io.ReadCloser, error)
}

// JoinResult describes the joined clip.
type JoinResult struct {
	Start    time.Time     // wall clock of the first frame (a keyframe at or before from)
	End      time.Time     // wall clock just after the last frame
	Duration time.Duration // media duration of the first video track
	Size     int64         // bytes written to w
}

// Join writes one fragmented MP4 covering [from, to) of segs: it starts at
// the last keyframe at or before from and ends before the first keyframe at
// or after to, or at the end of the data. Segments are sorted by Start and
// read one fragment at a time, and the output is written as it goes: memory
// stays around one GOP, never the whole clip.
//
// Output timestamps are continuous: each segment's samples are shifted so
// they present right after the previous segment's last presented frame
// (with B-frames that is later than its last decode time), which also
// closes gaps between segments. Fragment sequence numbers are renumbered.
//
// The first video track decides where the clip starts and ends; other
// tracks keep the samples inside that span, from their first keyframe. All
// segments must have the same init (tracks, timescales and codec
// parameters), otherwise Join fails with ErrIncompatibleSegments. On error
// part of the clip may already have been written to w.
func Join(w io.Writer, segs []JoinSegment, from, to time.Time) (JoinResult, error) {
	if !from.Before(to) {
		return JoinResult{}, fmt.Errorf("join: empty range %v..%v", from, to)
	}
	segs = slices.Clone(segs)
	slices.SortStableFunc(segs, func(a, b JoinSegment) int { return a.Start.Compare(b.Start) })
	j := &joiner{w: w, from: from, to: to}

	for i, seg := range segs {
		if j.done {
			break
		}
		if !j.started && i+1 < len(segs) && !segs[i+1].Start.After(from) {
			// The next segment starts (with a keyframe) at or before from,
			// so the clip cannot start in this one.
			continue
		}
		if !seg.Start.Before(to) {
			// This segment's first keyframe is at or after to.
			j.endWall = seg.Start
			break
		}
		if err := j.readSegment(i, seg); err != nil {
			return JoinResult{}, err
		}
	}
	if !j.done {
		if err := j.finish(); err != nil {
			return JoinResult{}, err
		}
	}
	if j.out == 0 {
		return JoinResult{}, ErrNoMedia
	}
	leader := j.tracks[j.leader]
	return JoinResult{
		Start:    j.startWall,
		End:      leader.lastWallEnd,
		Duration: TicksToDuration(uint64(leader.decEnd), leader.timescale),
		Size:     j.size,
	}, nil
}

type joiner struct {
	w        io.Writer
	from, to time.Time

	init   *fmp4.Init
	tracks []*joinTrack
	leader int
	buf    seekablebuffer.Buffer

	started   bool // a frame after from was seen; pending is committed
	done      bool
	pending   []pendingPart
	candidate bool      // pending starts at a keyframe
	startWall time.Time // wall clock of the clip's first keyframe
	endWall   time.Time // first keyframe at or after to (zero: end of data)
	lastEnd   time.Time // end of the last leader sample seen

	seq  uint32
	out  int // parts written
	size int64
}

type joinTrack struct {
	id        int
	timescale uint32

	started     bool  // first keyframe written
	seg         int   // segment whose shift is in effect (-1 none)
	shift       int64 // output decode time - input decode time
	decEnd      int64 // output decode time after the last written sample
	presEnd     int64 // latest output presentation end
	lastWallEnd time.Time
}

type joinSample struct {
	dts  uint64 // input decode time
	wall time.Time
	s    *fmp4.Sample
}

type inPart struct {
	seg    int
	tracks [][]joinSample // by index in init
}

type pendingPart struct {
	p      *inPart
	lo, hi int // leader samples to keep
}

func (j *joiner) readSegment(idx int, seg JoinSegment) error {
	rc, err := seg.Open()
	if err != nil {
		return fmt.Errorf("join: open segment %d: %w", idx, err)
	}
	defer rc.Close()
	r := &boxReader{r: bufio.NewReaderSize(rc, 64<<10)}

	initRaw, err := r.readInit()
	if err != nil {
		return fmt.Errorf("join: segment %d: %w", idx, err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(initRaw)); err != nil {
		return fmt.Errorf("join: segment %d: %w: init: %w", idx, ErrBadSegment, err)
	}
	if err := j.useInit(&init); err != nil {
		return fmt.Errorf("join: segment %d: %w", idx, err)
	}

	for !j.done {
		raw, err := r.readFragment()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("join: segment %d: %w", idx, err)
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(raw); err != nil {
			return fmt.Errorf("join: segment %d: %w: fragment: %w", idx, ErrBadSegment, err)
		}
		for _, p := range parts {
			in, err := j.flatten(idx, seg.Start, p)
			if err != nil {
				return fmt.Errorf("join: segment %d: %w", idx, err)
			}
			if err := j.process(in); err != nil {
				return err
			}
			if j.done {
				break
			}
		}
	}
	return nil
}

// useInit keeps the first segment's init and checks later ones against it.
func (j *joiner) useInit(init *fmp4.Init) error {
	if j.init == nil {
		j.init = init
		j.leader = slices.IndexFunc(init.Tracks, func(t *fmp4.InitTrack) bool { return t.Codec.IsVideo() })
		if j.leader < 0 {
			j.leader = 0
		}
		for _, t := range init.Tracks {
			j.tracks = append(j.tracks, &joinTrack{id: t.ID, timescale: t.TimeScale, seg: -1})
		}
		return nil
	}
	if len(init.Tracks) != len(j.init.Tracks) {
		return fmt.Errorf("%w: %d tracks, first segment has %d", ErrIncompatibleSegments, len(init.Tracks), len(j.init.Tracks))
	}
	for i, t := range init.Tracks {
		ref := j.init.Tracks[i]
		if t.ID != ref.ID || t.TimeScale != ref.TimeScale || !reflect.DeepEqual(t.Codec, ref.Codec) {
			return fmt.Errorf("%w: track %d", ErrIncompatibleSegments, t.ID)
		}
	}
	return nil
}

// flatten gives each sample of p its input decode time and wall clock.
func (j *joiner) flatten(seg int, start time.Time, p *fmp4.Part) (*inPart, error) {
	in := &inPart{seg: seg, tracks: make([][]joinSample, len(j.tracks))}
	for _, pt := range p.Tracks {
		ti := slices.IndexFunc(j.tracks, func(t *joinTrack) bool { return t.id == pt.ID })
		if ti < 0 {
			return nil, fmt.Errorf("%w: fragment for unknown track %d", ErrBadSegment, pt.ID)
		}
		ts := j.tracks[ti].timescale
		dts := pt.BaseTime
		for _, s := range pt.Samples {
			in.tracks[ti] = append(in.tracks[ti], joinSample{
				dts:  dts,
				wall: start.Add(TicksToDuration(dts, ts)),
				s:    s,
			})
			dts += uint64(s.Duration)
		}
	}
	return in, nil
}

// process runs the first video track's samples of one input part through
// the clip's start/end rules and writes what is decided.
func (j *joiner) process(in *inPart) error {
	leader := in.tracks[j.leader]
	lo, hi := 0, len(leader)
	for i, s := range leader {
		key := !s.s.IsNonSyncSample
		if key && !s.wall.Before(j.to) {
			hi = i
			j.done, j.endWall = true, s.wall
			break
		}
		j.lastEnd = s.wall.Add(TicksToDuration(uint64(s.s.Duration), j.tracks[j.leader].timescale))
		if j.started {
			continue
		}
		if !s.wall.After(j.from) {
			switch {
			case key:
				// A later keyframe at or before from: start there instead.
				j.pending, j.candidate, j.startWall, lo = nil, true, s.wall, i
			case !j.candidate:
				lo = i + 1
			}
			continue
		}
		// The first frame after from decides the start.
		switch {
		case j.candidate:
			j.started = true
		case key:
			j.started, j.candidate, j.startWall, lo = true, true, s.wall, i
		default:
			lo = i + 1 // no keyframe yet
		}
	}
	if j.candidate {
		j.pending = append(j.pending, pendingPart{p: in, lo: lo, hi: hi})
	}
	if j.done {
		return j.finish()
	}
	if j.started {
		return j.flushPending()
	}
	return nil
}

// finish writes what is still pending once the end is known. A GOP that
// was never followed by a frame after from is written only if it lasts past
// from; otherwise the range holds no media.
func (j *joiner) finish() error {
	j.done = true
	if !j.started && !j.lastEnd.After(j.from) {
		j.pending = nil
		return nil
	}
	return j.flushPending()
}

func (j *joiner) flushPending() error {
	for _, pp := range j.pending {
		if err := j.emit(pp.p, pp.lo, pp.hi); err != nil {
			return err
		}
	}
	j.pending = nil
	return nil
}

// emit writes leader samples [lo, hi) of p and the other tracks' samples in
// the clip's span as one output fragment.
func (j *joiner) emit(p *inPart, lo, hi int) error {
	if j.out == 0 {
		j.buf.Reset()
		if err := j.init.Marshal(&j.buf); err != nil {
			return fmt.Errorf("join: marshal init: %w", err)
		}
		if err := j.write(j.buf.Bytes()); err != nil {
			return err
		}
	}
	part := fmp4.Part{SequenceNumber: j.seq + 1}
	for ti, t := range j.tracks {
		var samples []*fmp4.Sample
		var base int64
		for k, s := range p.tracks[ti] {
			if ti == j.leader {
				if k < lo || k >= hi {
					continue
				}
			} else if s.wall.Before(j.startWall) || (!j.endWall.IsZero() && !s.wall.Before(j.endWall)) {
				continue
			}
			if !t.started && s.s.IsNonSyncSample {
				continue
			}
			if t.seg != p.seg {
				t.seg = p.seg
				var out int64
				switch {
				case t.started:
					out = max(t.decEnd, t.presEnd-int64(s.s.PTSOffset))
				case ti != j.leader:
					out = int64(DurationToTicks(s.wall.Sub(j.startWall), t.timescale))
				}
				t.shift = out - int64(s.dts)
			}
			t.started = true
			o := int64(s.dts) + t.shift
			if len(samples) == 0 {
				base = o
			}
			samples = append(samples, s.s)
			t.decEnd = o + int64(s.s.Duration)
			t.presEnd = max(t.presEnd, o+int64(s.s.PTSOffset)+int64(s.s.Duration))
			t.lastWallEnd = s.wall.Add(TicksToDuration(uint64(s.s.Duration), t.timescale))
		}
		if len(samples) > 0 {
			part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: t.id, BaseTime: uint64(base), Samples: samples})
		}
	}
	if len(part.Tracks) == 0 {
		return nil
	}
	j.buf.Reset()
	if err := part.Marshal(&j.buf); err != nil {
		return fmt.Errorf("join: marshal fragment: %w", err)
	}
	if err := j.write(j.buf.Bytes()); err != nil {
		return err
	}
	j.seq++
	j.out++
	return nil
}

func (j *joiner) write(b []byte) error {
	n, err := j.w.Write(b)
	j.size += int64(n)
	if err != nil {
		return fmt.Errorf("join: write: %w", err)
	}
	return nil
}

// boxReader reads top-level MP4 boxes from a stream.
type boxReader struct {
	r   *bufio.Reader
	hdr [16]byte
	n   int64 // bytes consumed so far
}

// header reads a box header; size includes the header. io.EOF only at a
// clean box boundary.
func (r *boxReader) header() (typ string, size uint64, hdr []byte, err error) {
	n, err := io.ReadFull(r.r, r.hdr[:8])
	r.n += int64(n)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return "", 0, nil, fmt.Errorf("%w: truncated box header", ErrBadSegment)
		}
		return "", 0, nil, err
	}
	size = uint64(binary.BigEndian.Uint32(r.hdr[:4]))
	typ = string(r.hdr[4:8])
	hdr = r.hdr[:8]
	switch size {
	case 0:
		return "", 0, nil, fmt.Errorf("%w: box %q extends to end of file", ErrBadSegment, typ)
	case 1:
		n, err := io.ReadFull(r.r, r.hdr[8:16])
		r.n += int64(n)
		if err != nil {
			return "", 0, nil, fmt.Errorf("%w: truncated box header", ErrBadSegment)
		}
		size = binary.BigEndian.Uint64(r.hdr[8:16])
		hdr = r.hdr[:16]
	}
	if size < uint64(len(hdr)) {
		return "", 0, nil, fmt.Errorf("%w: box %q size %d", ErrBadSegment, typ, size)
	}
	return typ, size, hdr, nil
}

// appendBox appends the whole box (header included) to dst.
func (r *boxReader) appendBox(dst []byte, typ string, size uint64, hdr []byte) ([]byte, error) {
	if size > MaxJoinBoxSize {
		return nil, fmt.Errorf("%w: box %q of %d bytes exceeds %d", ErrBadSegment, typ, size, MaxJoinBoxSize)
	}
	dst = slices.Grow(dst, int(size))
	dst = append(dst, hdr...)
	n := int(size) - len(hdr)
	off := len(dst)
	dst = dst[:off+n]
	read, err := io.ReadFull(r.r, dst[off:])
	r.n += int64(read)
	if err != nil {
		return nil, fmt.Errorf("%w: box %q: %w", ErrBadSegment, typ, err)
	}
	return dst, nil
}

func (r *boxReader) skip(typ string, size uint64, hdr []byte) error {
	n, err := r.r.Discard(int(size) - len(hdr))
	r.n += int64(n)
	if err != nil {
		return fmt.Errorf("%w: box %q: %w", ErrBadSegment, typ, err)
	}
	return nil
}

// readInit returns the raw ftyp and moov boxes.
func (r *boxReader) readInit() ([]byte, error) {
	var raw []byte
	for {
		typ, size, hdr, err := r.header()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: no moov box", ErrBadSegment)
		}
		if err != nil {
			return nil, err
		}
		switch typ {
		case "ftyp", "moov":
			if raw, err = r.appendBox(raw, typ, size, hdr); err != nil {
				return nil, err
			}
			if typ == "moov" {
				return raw, nil
			}
		case "moof", "mdat":
			return nil, fmt.Errorf("%w: %s before moov", ErrBadSegment, typ)
		default:
			if err := r.skip(typ, size, hdr); err != nil {
				return nil, err
			}
		}
	}
}

// readFragment returns the raw bytes from a moof through its mdat, so that
// moof-relative data offsets hold. io.EOF after the last fragment.
func (r *boxReader) readFragment() ([]byte, error) {
	var raw []byte
	for {
		typ, size, hdr, err := r.header()
		if errors.Is(err, io.EOF) {
			if raw != nil {
				return nil, fmt.Errorf("%w: moof without mdat", ErrBadSegment)
			}
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		if raw == nil && typ != "moof" {
			if err := r.skip(typ, size, hdr); err != nil {
				return nil, err
			}
			continue
		}
		if raw != nil && typ == "moof" {
			return nil, fmt.Errorf("%w: moof without mdat", ErrBadSegment)
		}
		if raw, err = r.appendBox(raw, typ, size, hdr); err != nil {
			return nil, err
		}
		if typ == "mdat" {
			return raw, nil
		}
		if len(raw) > 2*MaxJoinBoxSize {
			return nil, fmt.Errorf("%w: fragment too large", ErrBadSegment)
		}
	}
}

package mediaworker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/opennvr/vms/media"
)

const (
	// maxFragmentBytes flushes a fragment early so a very high bitrate
	// cannot make one fragment (held in memory) unbounded.
	maxFragmentBytes = 4 << 20
	// fallbackFrameDuration is the last sample's duration when no earlier
	// frame tells us the frame rate.
	fallbackFrameDuration = 40 * time.Millisecond
	// segmentTimeLayout names segment files; it sorts lexically by time.
	segmentTimeLayout = "20060102T150405.000Z"
)

// openSegment is the segment file being written.
type openSegment struct {
	file     *os.File
	tmpPath  string
	start    time.Time     // wall clock of the first frame
	startDTS time.Duration // DTS of the first frame; decode time 0
	seq      uint32
	size     int64
	cutNext  bool // cut at the next keyframe of the first track
	// keyAt is the file offset where the fragment of the last keyframe of
	// the first track begins (0: the segment's first keyframe), keyNext
	// that track's decode time there, in ticks.
	keyAt   int64
	keyNext uint64
	// The init is written with the first fragment, so that tracks whose
	// parameters arrive just after the first keyframe (an MJPEG track's
	// first image) still make it into the segment.
	initWritten bool
}

// appendHeld moves the held frame into the fragment; nextDTS is the DTS of
// the frame after it, or <= held DTS when unknown (end of segment).
func (s *Segmenter) appendHeld(t *segTrack, nextDTS time.Duration) error {
	if !t.hasHeld {
		return nil
	}
	start := s.seg.startDTS
	dts := media.DurationToTicks(t.held.dts-start, t.timescale)
	var dur uint64
	if nextDTS > t.held.dts {
		dur = media.DurationToTicks(nextDTS-start, t.timescale) - dts
	}
	if dur == 0 {
		dur = uint64(t.lastDur)
		if dur == 0 {
			dur = media.DurationToTicks(fallbackFrameDuration, t.timescale)
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
		PTSOffset:       int32(media.DurationToSignedTicks(t.held.pts-start, t.timescale) - int64(dts)),
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
	if t.next-t.fragBase >= media.DurationToTicks(s.cfg.FragmentDuration, t.timescale) {
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
	file, err := os.CreateTemp(s.cfg.Dir, partialPattern)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	start := f.Wall
	if start.IsZero() {
		start = time.Now()
	}
	start = start.UTC()
	if s.cfg.SessionID != "" {
		info := partialInfo{SessionID: s.cfg.SessionID, ChannelID: s.cfg.ChannelID, Start: start}
		if err := info.write(file.Name()); err != nil {
			file.Close()
			removePartial(file.Name())
			return err
		}
	}
	s.seg = &openSegment{file: file, tmpPath: file.Name(), start: start, startDTS: f.DTS, seq: 1}
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
	leader := s.tracks[0]
	return s.publishSegment(media.TicksToDuration(leader.next, leader.timescale))
}

// publishSegment syncs, closes and publishes the open segment, whose
// fragments are all written and whose first track lasts dur.
func (s *Segmenter) publishSegment(dur time.Duration) error {
	seg := s.seg
	leader := s.tracks[0]
	s.seg = nil
	for _, t := range s.tracks {
		t.active = false
	}
	if err := seg.file.Sync(); err != nil {
		seg.file.Close()
		removePartial(seg.tmpPath)
		return fmt.Errorf("sync segment: %w", err)
	}
	if err := seg.file.Close(); err != nil {
		removePartial(seg.tmpPath)
		return fmt.Errorf("close segment: %w", err)
	}
	path, err := s.publish(seg.tmpPath, seg.start)
	os.Remove(sidecarPath(seg.tmpPath))
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
	removePartial(s.seg.tmpPath)
	s.seg = nil
	for _, t := range s.tracks {
		t.active, t.hasHeld = false, false
		t.samples, t.arena = t.samples[:0], t.arena[:0]
	}
}

package media

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	mp4codecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/opennvr/vms/media/mediatest"
)

var joinT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const frameTicks = 3600 // 40 ms at 90 kHz

// loopFrames repeats a sample (which starts with a keyframe) until it
// covers d, stamping Wall = t0 + DTS.
func loopFrames(frames []Frame, d time.Duration, t0 time.Time) []Frame {
	period := time.Duration(len(frames)) * (frames[1].DTS - frames[0].DTS)
	var out []Frame
	for loop := 0; ; loop++ {
		for _, f := range frames {
			f.DTS += time.Duration(loop) * period
			f.PTS += time.Duration(loop) * period
			if f.DTS >= d {
				return out
			}
			f.Wall = t0.Add(f.DTS)
			out = append(out, f)
		}
	}
}

type testSegment struct {
	start time.Time
	data  []byte
}

// buildSegments cuts frames into fMP4 segments of segLen at keyframes,
// with one-second fragments, the way the media worker's segmenter does.
func buildSegments(t *testing.T, track Track, frames []Frame, segLen time.Duration) []testSegment {
	t.Helper()
	var segs []testSegment
	for start := 0; start < len(frames); {
		end := start + 1
		for end < len(frames) && !(frames[end].Keyframe && frames[end].DTS-frames[start].DTS >= segLen) {
			end++
		}
		var buf seekablebuffer.Buffer
		init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: 90000,
			Codec: &mp4codecs.CodecH264{SPS: track.SPS, PPS: track.PPS}}}}
		if err := init.Marshal(&buf); err != nil {
			t.Fatal(err)
		}
		base := frames[start].DTS
		tick := func(d time.Duration) int64 { return int64(d-base) * 90000 / int64(time.Second) }
		seq := uint32(1)
		for fs := start; fs < end; fs += 25 {
			pt := &fmp4.PartTrack{ID: 1, BaseTime: uint64(tick(frames[fs].DTS))}
			for i := fs; i < min(fs+25, end); i++ {
				dur := int64(frameTicks)
				if i+1 < len(frames) {
					dur = tick(frames[i+1].DTS) - tick(frames[i].DTS)
				}
				pt.Samples = append(pt.Samples, &fmp4.Sample{
					Duration:        uint32(dur),
					PTSOffset:       int32(tick(frames[i].PTS) - tick(frames[i].DTS)),
					IsNonSyncSample: !frames[i].Keyframe,
					Payload:         frames[i].Payload,
				})
			}
			part := fmp4.Part{SequenceNumber: seq, Tracks: []*fmp4.PartTrack{pt}}
			if err := part.Marshal(&buf); err != nil {
				t.Fatal(err)
			}
			seq++
		}
		segs = append(segs, testSegment{start: frames[start].Wall, data: bytes.Clone(buf.Bytes())})
		start = end
	}
	return segs
}

func joinSegments(segs []testSegment, opened *[]int) []JoinSegment {
	var out []JoinSegment
	for i, s := range segs {
		out = append(out, JoinSegment{Start: s.start, Open: func() (io.ReadCloser, error) {
			if opened != nil {
				*opened = append(*opened, i)
			}
			return io.NopCloser(bytes.NewReader(s.data)), nil
		}})
	}
	return out
}

func loadSample(t *testing.T, name string, d time.Duration) (Track, []Frame) {
	t.Helper()
	track, frames, err := ReadH264File(filepath.Join("..", "testdata", name), 25)
	if err != nil {
		t.Fatal(err)
	}
	return track, loopFrames(frames, d, joinT0)
}

type parsedSample struct {
	dts, pts int64
	key      bool
}

// parseClip reads a joined file back: one init, then fragments numbered
// from 1 whose decode times follow on without gaps.
func parseClip(t *testing.T, data []byte) []parsedSample {
	t.Helper()
	r := &boxReader{r: bufio.NewReader(bytes.NewReader(data))}
	initRaw, err := r.readInit()
	if err != nil {
		t.Fatal(err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(initRaw)); err != nil {
		t.Fatal(err)
	}
	var out []parsedSample
	seq := uint32(0)
	next := uint64(0)
	for {
		raw, err := r.readFragment()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			seq++
			if p.SequenceNumber != seq {
				t.Fatalf("sequence number %d, want %d", p.SequenceNumber, seq)
			}
			pt := p.Tracks[0]
			if pt.BaseTime != next {
				t.Fatalf("fragment %d base time %d, previous fragment ended at %d", seq, pt.BaseTime, next)
			}
			dts := pt.BaseTime
			for _, s := range pt.Samples {
				out = append(out, parsedSample{dts: int64(dts), pts: int64(dts) + int64(s.PTSOffset), key: !s.IsNonSyncSample})
				dts += uint64(s.Duration)
			}
			next = dts
		}
	}
	return out
}

// assertContinuous checks the clip starts with a keyframe, decode times
// step by one frame, and presentation times cover every frame slot once.
func assertContinuous(t *testing.T, samples []parsedSample) {
	t.Helper()
	if len(samples) == 0 || !samples[0].key {
		t.Fatal("clip does not start with a keyframe")
	}
	var pts []int64
	for i, s := range samples {
		if i > 0 && s.dts-samples[i-1].dts != frameTicks {
			t.Fatalf("dts step %d at sample %d", s.dts-samples[i-1].dts, i)
		}
		pts = append(pts, s.pts)
	}
	slices.Sort(pts)
	for i := 1; i < len(pts); i++ {
		if pts[i]-pts[i-1] != frameTicks {
			t.Fatalf("presentation gap/overlap %d at %d", pts[i]-pts[i-1], i)
		}
	}
}

func TestJoinRanges(t *testing.T) {
	track, frames := loadSample(t, "bframes.h264", 60*time.Second) // keyframe every 2 s
	segs := buildSegments(t, track, frames, 10*time.Second)
	if len(segs) != 6 {
		t.Fatalf("%d segments, want 6", len(segs))
	}
	at := func(s float64) time.Time { return joinT0.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name             string
		from, to         time.Time
		wantStart        time.Time
		wantDur          time.Duration
		wantOpened       []int
		wantFirstFrameOK bool
	}{
		{"inside one segment", at(3.3), at(7.9), at(2), 6 * time.Second, []int{0}, true},
		{"spans three segments", at(13.3), at(37.1), at(12), 26 * time.Second, []int{1, 2, 3}, true},
		{"keyframe aligned", at(20), at(30), at(20), 10 * time.Second, []int{2}, true},
		{"from before data", at(-5), at(5), at(0), 6 * time.Second, []int{0}, true},
		{"to after data", at(55), at(100), at(54), 6 * time.Second, []int{5}, true},
		{"whole recording", at(-1), at(61), at(0), 60 * time.Second, []int{0, 1, 2, 3, 4, 5}, true},
		{"from in last frames of a segment", at(19.99), at(20.5), at(18), 4 * time.Second, []int{1, 2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opened []int
			var out bytes.Buffer
			res, err := Join(&out, joinSegments(segs, &opened), tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Start.Equal(tt.wantStart) || res.Duration != tt.wantDur || !res.End.Equal(tt.wantStart.Add(tt.wantDur)) {
				t.Fatalf("result %+v, want start %v duration %v", res, tt.wantStart, tt.wantDur)
			}
			if res.Size != int64(out.Len()) {
				t.Fatalf("size %d, wrote %d", res.Size, out.Len())
			}
			if !slices.Equal(opened, tt.wantOpened) {
				t.Fatalf("opened segments %v, want %v", opened, tt.wantOpened)
			}
			samples := parseClip(t, out.Bytes())
			if got := time.Duration(len(samples)) * 40 * time.Millisecond; got != tt.wantDur {
				t.Fatalf("%d samples (%v), want %v", len(samples), got, tt.wantDur)
			}
			assertContinuous(t, samples)
		})
	}
}

func TestJoinDecodesCleanly(t *testing.T) {
	mediatest.Need(t)
	track, frames := loadSample(t, "bframes.h264", 60*time.Second)
	segs := buildSegments(t, track, frames, 10*time.Second)
	path := filepath.Join(t.TempDir(), "clip.mp4")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	from, to := joinT0.Add(13300*time.Millisecond), joinT0.Add(37100*time.Millisecond)
	res, err := Join(f, joinSegments(segs, nil), from, to)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if msg := mediatest.DecodeErrors(t, path); msg != "" {
		t.Fatalf("ffmpeg decode errors:\n%s", msg)
	}
	requested := to.Sub(from).Seconds()
	if d := mediatest.Duration(t, path).Seconds(); d < requested || d > requested+2*2 {
		t.Fatalf("ffprobe duration %.3f s, requested %.3f s (+ up to one 2 s GOP each side)", d, requested)
	} else if diff := d - res.Duration.Seconds(); diff < -0.05 || diff > 0.05 {
		t.Fatalf("ffprobe duration %.3f s, Join reported %v", d, res.Duration)
	}
	mediatest.AssertConstantStep(t, "packet dts", mediatest.Ints(t, path, "packet=dts"), frameTicks)
	// Frames come out of the decoder in presentation order: their pts must
	// step by one frame too, which also proves the loader's POC ordering.
	mediatest.AssertConstantStep(t, "frame pts", mediatest.Ints(t, path, "frame=pts"), frameTicks)
}

func TestJoinClosesGaps(t *testing.T) {
	track, frames := loadSample(t, "bframes.h264", 40*time.Second)
	segs := buildSegments(t, track, frames, 10*time.Second)
	segs = slices.Delete(segs, 1, 2) // recording gap 10..20 s
	var out bytes.Buffer
	res, err := Join(&out, joinSegments(segs, nil), joinT0.Add(5*time.Second), joinT0.Add(25*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// 4..10 s, then 20..26 s, back to back.
	if res.Duration != 12*time.Second || !res.Start.Equal(joinT0.Add(4*time.Second)) || !res.End.Equal(joinT0.Add(26*time.Second)) {
		t.Fatalf("result %+v", res)
	}
	assertContinuous(t, parseClip(t, out.Bytes()))
}

func TestJoinNoMedia(t *testing.T) {
	track, frames := loadSample(t, "bframes.h264", 40*time.Second)
	segs := buildSegments(t, track, frames, 10*time.Second)
	gappy := slices.Delete(slices.Clone(segs), 1, 2)
	at := func(s float64) time.Time { return joinT0.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name     string
		segs     []testSegment
		from, to time.Time
	}{
		{"inside a gap", gappy, at(12), at(18)},
		{"after the data", segs, at(41), at(50)},
		{"before the data", segs, at(-10), at(-1)},
		{"no segments", nil, at(0), at(10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Join(&out, joinSegments(tt.segs, nil), tt.from, tt.to)
			if !errors.Is(err, ErrNoMedia) {
				t.Fatalf("err = %v, want ErrNoMedia", err)
			}
		})
	}
	if _, err := Join(io.Discard, joinSegments(segs, nil), at(5), at(5)); err == nil {
		t.Fatal("empty range accepted")
	}
}

func TestJoinIncompatibleSegments(t *testing.T) {
	trackA, framesA := loadSample(t, "bframes.h264", 10*time.Second)
	trackB, framesB := loadSample(t, "demo.h264", 10*time.Second)
	a := buildSegments(t, trackA, framesA, 10*time.Second)
	b := buildSegments(t, trackB, framesB, 10*time.Second)
	b[0].start = joinT0.Add(10 * time.Second)
	_, err := Join(io.Discard, joinSegments(append(a, b...), nil), joinT0, joinT0.Add(15*time.Second))
	if !errors.Is(err, ErrIncompatibleSegments) {
		t.Fatalf("err = %v, want ErrIncompatibleSegments", err)
	}
}

func TestJoinBadSegments(t *testing.T) {
	track, frames := loadSample(t, "bframes.h264", 10*time.Second)
	seg := buildSegments(t, track, frames, 10*time.Second)[0]
	tests := map[string][]byte{
		"garbage":          []byte("this is not an mp4 file at all"),
		"init only cut":    seg.data[:100],
		"truncated mdat":   seg.data[:len(seg.data)-10],
		"moof before moov": append([]byte{0, 0, 0, 8, 'm', 'o', 'o', 'f'}, seg.data...),
		"huge box":         []byte{0xff, 0xff, 0xff, 0xff, 'm', 'o', 'o', 'v'},
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			segs := joinSegments([]testSegment{{start: joinT0, data: data}}, nil)
			_, err := Join(io.Discard, segs, joinT0, joinT0.Add(time.Minute))
			if !errors.Is(err, ErrBadSegment) {
				t.Fatalf("err = %v, want ErrBadSegment", err)
			}
		})
	}
	openErr := errors.New("s3 down")
	segs := []JoinSegment{{Start: joinT0, Open: func() (io.ReadCloser, error) { return nil, openErr }}}
	if _, err := Join(io.Discard, segs, joinT0, joinT0.Add(time.Second)); !errors.Is(err, openErr) {
		t.Fatalf("err = %v, want the open error", err)
	}
}

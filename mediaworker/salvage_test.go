package mediaworker_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/media/mediatest"
	"github.com/opennvr/vms/mediaworker"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
)

// crashedSegment runs the real segmenter on frames into
// workDir/<session> and abandons it without Close, as a SIGKILLed worker
// does: the frames of the fragment being built are lost, the fragments
// already written stay in the partial file. It returns that file.
func crashedSegment(t *testing.T, workDir string, g recording.Grant, track media.Track, frames []media.Frame) string {
	t.Helper()
	dir := filepath.Join(workDir, g.SessionID)
	seg, err := mediaworker.NewSegmenter(mediaworker.SegmenterConfig{Dir: dir, Tracks: []media.Track{track},
		Target: 30 * time.Second, SessionID: g.SessionID, ChannelID: g.ChannelID,
		OnSegment: func(s mediaworker.Segment) error {
			t.Errorf("segment %s finished before the crash", s.Path)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := seg.WriteFrame(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	partials, _ := filepath.Glob(filepath.Join(dir, ".segment-*.partial"))
	if len(partials) != 1 {
		t.Fatalf("%s holds partial files %q, want one", dir, partials)
	}
	return partials[0]
}

// A worker that dies mid-segment leaves a partial file; the next worker's
// spool cuts it before its last keyframe on disk (2 s GOP; fragments of at
// most 1 s, a keyframe always starting one and written alone once its
// duration is known), uploads and reports it as a short recording of its
// session, with its real times. The agent replays from that keyframe or a
// later one.
func TestSpoolSalvagesPartialSegment(t *testing.T) {
	mediatest.Require(t)
	tests := []struct {
		name   string
		stream time.Duration // of frames written before the crash
		tear   int64         // bytes cut off the file's end after the crash
		want   time.Duration // salvaged; 0: nothing, the file is removed
	}{
		// Frames up to 5.46 s: the keyframe at 4 s is on disk.
		{name: "crash mid-fragment", stream: 5500 * time.Millisecond, want: 4 * time.Second},
		// The keyframe at 4 s and what follows are torn off.
		{name: "torn last fragment", stream: 4080 * time.Millisecond, tear: 100, want: 2 * time.Second},
		{name: "fragment boundary", stream: 3040 * time.Millisecond, want: 2 * time.Second},
		{name: "keyframe just written", stream: 4080 * time.Millisecond, want: 4 * time.Second},
		{name: "only the first GOP", stream: 1900 * time.Millisecond},
		{name: "torn first fragment", stream: 1500 * time.Millisecond, tear: 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objects, _ := s3test.Start(t)
			control := newFakeControl()
			g := control.grant("token-1")
			workDir := t.TempDir()
			track, frames := demoFrames(t, tc.stream)
			partial := crashedSegment(t, workDir, g, track, frames)
			if tc.tear > 0 {
				st, err := os.Stat(partial)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(partial, st.Size()-tc.tear); err != nil {
					t.Fatal(err)
				}
			}

			sp := newSpool(t, t.TempDir(), mediaworker.ObjectUploader{Objects: objects}, control)
			sp.WorkDir = workDir
			runSpool(t, sp)
			drain(t, sp)

			got := control.accepted(g.SessionID)
			if tc.want == 0 {
				if len(got) != 0 {
					t.Errorf("control plane recorded %+v, want nothing", got)
				}
			} else {
				if len(got) != 1 {
					t.Fatalf("control plane recorded %+v, want one segment", got)
				}
				r := got[0]
				key := recording.RecordingKey(uuid.MustParse(g.ChannelID), uuid.MustParse(g.SessionID), wallStart)
				if r.Key != key || !r.Start.Equal(wallStart) || !r.End.Equal(wallStart.Add(tc.want)) ||
					r.DurationMS != tc.want.Milliseconds() || r.Codec != media.CodecH264 {
					t.Errorf("salvaged %+v, want %s, %s..%s, h264", r, key, wallStart, wallStart.Add(tc.want))
				}
				info, err := objects.Head(t.Context(), r.Key)
				if err != nil {
					t.Fatalf("salvaged segment not in S3: %v", err)
				}
				if info.Size != r.Size {
					t.Errorf("reported %d bytes, S3 holds %d", r.Size, info.Size)
				}
				if md, ok := recording.SegmentReportFromMetadata(r.Key, info.Size, info.Metadata); !ok || md != r {
					t.Errorf("object metadata reads as %+v (ok %v), want %+v", md, ok, r)
				}
				path := download(t, objects, r.Key)
				if msg := mediatest.DecodeErrors(t, path); msg != "" {
					t.Errorf("salvaged segment: ffmpeg decode errors:\n%s", msg)
				}
				if d := mediatest.Duration(t, path); (d - tc.want).Abs() > 50*time.Millisecond {
					t.Errorf("salvaged segment lasts %s for ffprobe, want %s", d, tc.want)
				}
				if codec, n := probe(t, objects, r.Key); codec != "h264" || n != int(tc.want/(40*time.Millisecond)) {
					t.Errorf("salvaged segment decodes as %q with %d frames, want h264 with %d", codec, n, tc.want/(40*time.Millisecond))
				}
			}
			// Nothing is left behind: not the partial, its sidecar or its
			// session folder.
			assertDirEntries(t, workDir)
			assertDirEntries(t, sp.Dir)
		})
	}
}

// The spool salvages only what an earlier process left: a stream that
// this process started before the spool ran keeps writing its segment.
func TestSpoolSalvageSparesLiveStreams(t *testing.T) {
	mediatest.Require(t)
	objects, _ := s3test.Start(t)
	control := newFakeControl()
	workDir := t.TempDir()
	crashed := control.grant("crashed")
	track, frames := demoFrames(t, 6*time.Second)
	crashedSegment(t, workDir, crashed, track, frames[:len(frames)/2])

	sp := newSpool(t, t.TempDir(), mediaworker.ObjectUploader{Objects: objects}, control)
	sp.WorkDir = workDir
	srv := &mediaworker.Server{Control: control, Spool: sp, SegmentLength: 30 * time.Second, Logger: testLogger(t)}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	in := &ingest{control: control, objects: objects, spool: sp, server: srv, url: "ws" + strings.TrimPrefix(ts.URL, "http") + "/v1/ingest"}
	live := control.grant("live")
	conn, _ := in.connect(t, "live", track)
	sendFrames(t, conn, frames[:len(frames)/2])
	// The live stream's first fragment is on disk before the spool runs.
	livePartials := func() []string {
		p, _ := filepath.Glob(filepath.Join(workDir, live.SessionID, ".segment-*.partial"))
		return p
	}
	deadline := time.Now().Add(waitTimeout)
	for len(livePartials()) == 0 || fileSize(t, livePartials()[0]) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the live stream wrote no fragment")
		}
		time.Sleep(10 * time.Millisecond)
	}

	runSpool(t, sp)
	control.waitFor(t, "the crashed segment salvaged", func() bool { return len(control.accepted(crashed.SessionID)) == 1 })
	if got := control.accepted(live.SessionID); len(got) != 0 || len(livePartials()) != 1 {
		t.Fatalf("the live stream's segment was taken: reported %+v, partials %q", got, livePartials())
	}
	sendFrames(t, conn, frames[len(frames)/2:])
	stopStream(t, conn)
	in.waitStopped(t, live.SessionID)
	srv.Wait()

	if got := control.accepted(live.SessionID); len(got) != 1 || got[0].DurationMS != 6000 {
		t.Errorf("live stream recorded %+v, want its whole 6 s segment", got)
	}
	if got := control.accepted(crashed.SessionID); len(got) != 1 || got[0].DurationMS != 2000 {
		t.Errorf("crashed stream recorded %+v, want its first GOP (2 s, up to the keyframe on disk)", got)
	}
	assertDirEntries(t, workDir)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

package e2e_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/opennvr/vms/democam"
	"github.com/opennvr/vms/media/mediatest"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/workflows/contract"
)

// source is a demo camera of one protocol and what its recordings and
// clips must look like.
type source struct {
	name     string
	protocol string // camera protocol in the API
	quality  string // stream-token quality that selects its path
	codec    string // ffprobe's codec name
	start    func(tb testing.TB) string
	// gop is the keyframe interval: a clip is trimmed on keyframes, so it
	// may run past its range by up to one.
	gop time.Duration
	// cameraClock: the camera timestamps frames (RTP), so every frame of a
	// constant-rate source lasts exactly as long. Otherwise frames carry
	// their arrival time, and a step is a gap only past a few frames.
	cameraClock bool
}

var sources = []source{
	{
		name: "rtsp-h264", protocol: store.ProtocolRTSP, quality: "high", codec: "h264", gop: demoGOP, cameraClock: true,
		start: func(tb testing.TB) string {
			cam, err := democam.Start(context.Background(), "127.0.0.1:0", "cam", demoSample)
			if err != nil {
				tb.Fatalf("demo camera: %v", err)
			}
			tb.Cleanup(cam.Close)
			return cam.URL()
		},
	},
	{
		// Every JPEG is a keyframe; at 10 images a second a clip may run
		// one image past its range, plus arrival jitter.
		name: "mjpeg", protocol: store.ProtocolMJPEG, quality: "mjpeg", codec: "mjpeg", gop: 300 * time.Millisecond,
		start: func(tb testing.TB) string {
			cam, err := democam.StartMJPEG(context.Background(), "127.0.0.1:0", "cam")
			if err != nil {
				tb.Fatalf("demo MJPEG camera: %v", err)
			}
			tb.Cleanup(cam.Close)
			return cam.URL()
		},
	},
}

// clipView is GET /v1/clips/{id}.
type clipView struct {
	ID       string  `json:"id"`
	Status   string  `json:"status"`
	Progress float64 `json:"progress"`
	Segments []struct {
		Start time.Time `json:"start"`
		End   time.Time `json:"end"`
		URL   string    `json:"url"`
	} `json:"segments"`
	URL   string `json:"url"`
	Error string `json:"error"`
}

// TestRecordAndClip: a demo camera → the agent → the media worker → S3 →
// recordings listed by the API that decode; then a clip from 6 s ago to
// 6 s ahead, which waits for the stream, finishes as one MP4 that decodes,
// lasts the requested 12 s up to one GOP, and has no timestamp gaps.
func TestRecordAndClip(t *testing.T) {
	mediatest.Require(t)
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			e := newEnv(t, envConfig{})
			startWorker(t, workerConfig{Name: "nvr-1", Addr: "127.0.0.1:0", DataDir: t.TempDir(),
				APIURL: e.apiURL, WorkerKey: e.workerKey, Segment: segmentLength}, e.objects)
			ch := e.addChannel(t, camera{Protocol: src.protocol, URL: src.start(t)})
			e.startAgent(t, ch, src.quality)

			var recs []recordingItem
			waitFor(t, "two recordings", waitLong, func() bool {
				recs = e.recordings(t, ch)
				return len(recs) >= 2
			})
			checkRecordings(t, src, recs)
			seg := download(t, recs[0].URL, "segment.mp4")
			if msg := mediatest.DecodeErrors(t, seg); msg != "" {
				t.Errorf("recording %s does not decode cleanly:\n%s", recs[0].ID, msg)
			}
			if p := probeVideo(t, seg); p.Codec != src.codec {
				t.Errorf("recording codec = %s, want %s", p.Codec, src.codec)
			}

			// A clip reaching 6 s into the future.
			now := time.Now().UTC()
			from, to := now.Add(-6*time.Second), now.Add(6*time.Second)
			var clip clipView
			e.call(t, http.MethodPost, "/v1/channels/"+ch+"/clips", map[string]time.Time{"start": from, "end": to},
				http.StatusAccepted, &clip)
			if clip.Status != contract.ClipInProgress {
				t.Fatalf("new clip status = %s, want %s", clip.Status, contract.ClipInProgress)
			}
			waitFor(t, "the clip to finish", to.Sub(now)+clipGrace+waitLong, func() bool {
				e.call(t, http.MethodGet, "/v1/clips/"+clip.ID, nil, http.StatusOK, &clip)
				if clip.Status == contract.ClipFailed {
					t.Fatalf("clip failed: %s", clip.Error)
				}
				return clip.Status == contract.ClipFinished
			})
			t.Logf("clip finished %s after its end, %d segments, progress %.2f",
				time.Since(to).Round(100*time.Millisecond), len(clip.Segments), clip.Progress)
			if clip.URL == "" || len(clip.Segments) == 0 {
				t.Fatalf("finished clip has url %q and %d segments", clip.URL, len(clip.Segments))
			}
			path := download(t, clip.URL, "clip.mp4")
			checkClip(t, src, path, to.Sub(from))
		})
	}
}

// checkRecordings checks the listed segments: one codec, media durations
// matching their time spans, consecutive, and (for a camera with GOPs) cut
// at the first keyframe after the target length.
func checkRecordings(t *testing.T, src source, recs []recordingItem) {
	t.Helper()
	for i, r := range recs {
		if r.Codec != src.codec || r.Size <= 0 || r.URL == "" {
			t.Errorf("recording %d: codec %q, size %d, url %q", i, r.Codec, r.Size, r.URL)
		}
		if span := r.End.Sub(r.Start); absDur(span-time.Duration(r.DurationMS)*time.Millisecond) > 5*time.Millisecond {
			t.Errorf("recording %d spans %s but lasts %d ms", i, span, r.DurationMS)
		}
		last := i == len(recs)-1
		if src.cameraClock && !last {
			if d := r.End.Sub(r.Start); d < segmentLength || d >= segmentLength+src.gop {
				t.Errorf("recording %d lasts %s, want the first keyframe at or after %s", i, d, segmentLength)
			}
		}
		if i > 0 {
			if gap := r.Start.Sub(recs[i-1].End); absDur(gap) > 250*time.Millisecond {
				t.Errorf("recording %d starts %s after recording %d ends", i, gap, i-1)
			}
		}
	}
}

// checkClip checks an assembled clip with ffmpeg and ffprobe: it decodes,
// lasts want up to one GOP (trimmed on keyframes, never shorter than the
// range), and its decode timestamps step evenly.
func checkClip(t *testing.T, src source, path string, want time.Duration) {
	t.Helper()
	if msg := mediatest.DecodeErrors(t, path); msg != "" {
		t.Errorf("clip does not decode cleanly:\n%s", msg)
	}
	p := probeVideo(t, path)
	if p.Codec != src.codec {
		t.Errorf("clip codec = %s, want %s", p.Codec, src.codec)
	}
	if !p.Packets[0].Key {
		t.Errorf("clip does not start with a keyframe")
	}
	steps := p.DTSSteps()
	frame := median(steps)
	got := p.Duration()
	t.Logf("clip: %d frames, %s (requested %s), frame %s", len(p.Packets), got, want, frame)
	if got < want-frame || got > want+src.gop+frame {
		t.Errorf("clip lasts %s, want %s up to one GOP (%s) more", got, want, src.gop)
	}
	if src.cameraClock {
		if d := p.distinctSteps(); len(d) != 1 || d[0] <= 0 {
			t.Errorf("clip DTS steps (ticks) = %v, want one constant step", d)
		}
		return
	}
	// Arrival times jitter, and frames read back to back after a stall
	// (a loaded machine) are stamped a millisecond apart: what must hold is
	// that time only moves forward, no step is a hole of several frames,
	// and no frame is missing for the time covered.
	nominal := time.Second / 10 // democam's MJPEG rate
	for i, s := range steps {
		if s <= 0 || s > 5*nominal {
			t.Errorf("clip DTS step %d = %s (frames every %s): a gap or a step back", i, s, nominal)
		}
	}
	if want := int(got / nominal); len(p.Packets) < want*9/10 {
		t.Errorf("clip has %d frames over %s, want about %d", len(p.Packets), got, want)
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

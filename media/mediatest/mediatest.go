// Package mediatest checks media files in tests with the real tools:
// ffmpeg decodes them, ffprobe reports their duration, streams and
// timestamps. What a test asserts about the answers stays in the test.
//
//	func TestClip(t *testing.T) {
//		mediatest.Need(t)
//		...
//		if msg := mediatest.DecodeErrors(t, path); msg != "" {
//			t.Fatalf("ffmpeg decode errors:\n%s", msg)
//		}
//	}
package mediatest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

var tools = []string{"ffmpeg", "ffprobe"}

// Need skips the test when ffmpeg or ffprobe is missing, except in CI
// (CI=...), where their absence is a setup failure.
func Need(tb testing.TB) {
	tb.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				tb.Fatalf("%s not found in PATH; CI must install ffmpeg", tool)
			}
			tb.Skipf("%s not found in PATH", tool)
		}
	}
}

// Require fails the test when ffmpeg or ffprobe is missing: for tests that
// mean nothing without them (the media worker's, the end-to-end ones).
func Require(tb testing.TB) {
	tb.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Fatalf("%s not found in PATH: install ffmpeg to run these tests", tool)
		}
	}
}

// DecodeErrors decodes every frame of the file with ffmpeg and returns what
// it reports (nothing for a clean file). The decoded frames keep the file's
// own time base (-enc_time_base -1): by default ffmpeg rescales them to
// 1/frame rate, where two MJPEG frames stamped a few milliseconds apart
// (arrival times) collide and the null muxer complains about timestamps the
// file does not have. Equal or decreasing timestamps in the file itself are
// still reported.
func DecodeErrors(tb testing.TB, path string) string {
	tb.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path,
		"-enc_time_base", "-1", "-f", "null", "-").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("ffmpeg: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// Probe runs ffprobe on the file with args and returns its output's fields.
func Probe(tb testing.TB, path string, args ...string) []string {
	tb.Helper()
	args = append([]string{"-v", "error"}, args...)
	out, err := exec.Command("ffprobe", append(args, path)...).Output()
	if err != nil {
		tb.Fatalf("ffprobe %v %s: %v", args, path, err)
	}
	return strings.Fields(string(out))
}

// Duration is the file's duration as ffprobe reports it.
func Duration(tb testing.TB, path string) time.Duration {
	tb.Helper()
	f := Probe(tb, path, "-show_entries", "format=duration", "-of", "csv=p=0")
	if len(f) != 1 {
		tb.Fatalf("ffprobe duration: %q", f)
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		tb.Fatalf("ffprobe duration %q: %v", f[0], err)
	}
	return time.Duration(s * float64(time.Second))
}

// Streams returns "codec,width,height" per stream.
func Streams(tb testing.TB, path string) []string {
	tb.Helper()
	return Probe(tb, path, "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0")
}

// Ints returns one integer entry (e.g. "packet=dts") per line of the first
// video stream.
func Ints(tb testing.TB, path, entry string) []int64 {
	tb.Helper()
	var out []int64
	for _, l := range Probe(tb, path, "-select_streams", "v:0", "-show_entries", entry, "-of", "csv=p=0") {
		v, err := strconv.ParseInt(strings.TrimSuffix(l, ","), 10, 64)
		if err != nil {
			tb.Fatalf("ffprobe %s: %q: %v", entry, l, err)
		}
		out = append(out, v)
	}
	return out
}

// AssertConstantStep fails unless vs increases by exactly step each time
// (timestamps of a constant-rate stream, as Ints reports them).
func AssertConstantStep(tb testing.TB, what string, vs []int64, step int64) {
	tb.Helper()
	if len(vs) < 2 {
		tb.Fatalf("%s: only %d values", what, len(vs))
	}
	for i := 1; i < len(vs); i++ {
		if vs[i]-vs[i-1] != step {
			tb.Fatalf("%s: step %d at index %d (%d -> %d), want %d", what, vs[i]-vs[i-1], i, vs[i-1], vs[i], step)
		}
	}
}

package media

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// needFFmpeg skips a test when ffmpeg/ffprobe are missing, except in CI
// (CI=...), where their absence is a setup failure.
func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found in PATH; CI must install ffmpeg", tool)
			}
			t.Skipf("%s not found in PATH", tool)
		}
	}
}

// ffmpegDecodeErrors decodes the whole file and returns what ffmpeg
// complains about (nothing for a clean file).
func ffmpegDecodeErrors(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil {
		return "ffmpeg: " + err.Error() + "\n" + string(out)
	}
	return strings.TrimSpace(string(out))
}

func ffprobe(t *testing.T, path string, args ...string) []string {
	t.Helper()
	args = append([]string{"-v", "error"}, args...)
	out, err := exec.Command("ffprobe", append(args, path)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %v %s: %v", args, path, err)
	}
	return strings.Fields(string(out))
}

func ffprobeDuration(t *testing.T, path string) float64 {
	t.Helper()
	f := ffprobe(t, path, "-show_entries", "format=duration", "-of", "csv=p=0")
	if len(f) != 1 {
		t.Fatalf("ffprobe duration: %q", f)
	}
	d, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ffprobeInts returns one integer entry (e.g. "packet=dts") per line of the
// first video stream.
func ffprobeInts(t *testing.T, path, entry string) []int64 {
	t.Helper()
	var out []int64
	for _, l := range ffprobe(t, path, "-select_streams", "v:0", "-show_entries", entry, "-of", "csv=p=0") {
		v, err := strconv.ParseInt(strings.TrimSuffix(l, ","), 10, 64)
		if err != nil {
			t.Fatalf("ffprobe %s: %q: %v", entry, l, err)
		}
		out = append(out, v)
	}
	return out
}

// assertConstantStep fails unless vs increases by exactly step each time.
func assertConstantStep(t *testing.T, what string, vs []int64, step int64) {
	t.Helper()
	if len(vs) < 2 {
		t.Fatalf("%s: only %d values", what, len(vs))
	}
	for i := 1; i < len(vs); i++ {
		if vs[i]-vs[i-1] != step {
			t.Fatalf("%s: step %d at index %d (%d -> %d), want %d", what, vs[i]-vs[i-1], i, vs[i-1], vs[i], step)
		}
	}
}

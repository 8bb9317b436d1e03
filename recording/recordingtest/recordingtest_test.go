package recordingtest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opennvr/vms/recording/recordingtest"
)

// A cut segment is a complete fMP4 of the asked length, cut once per length.
func TestCut(t *testing.T) {
	for _, d := range []time.Duration{15 * time.Second, 30 * time.Second} {
		seg := recordingtest.Cut(t, d)
		if again := recordingtest.Cut(t, d); &again.Data[0] != &seg.Data[0] {
			t.Errorf("%s: cut twice", d)
		}
		if seg.Duration != d || seg.Codec == "" || len(seg.Data) == 0 {
			t.Fatalf("segment = %s %q %d bytes", seg.Duration, seg.Codec, len(seg.Data))
		}
		if _, err := exec.LookPath("ffprobe"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("ffprobe not found in PATH; CI must install ffmpeg")
			}
			continue
		}
		path := filepath.Join(t.TempDir(), "seg.mp4")
		if err := os.WriteFile(path, seg.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); time.Duration(s*float64(time.Second)) != d {
			t.Errorf("ffprobe duration %s, want %s", strings.TrimSpace(string(out)), d)
		}
	}
}

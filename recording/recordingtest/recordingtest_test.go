package recordingtest_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opennvr/vms/media/mediatest"
	"github.com/opennvr/vms/recording/recordingtest"
)

// A cut segment is a complete fMP4 of the asked length, cut once per length.
func TestCut(t *testing.T) {
	lengths := []time.Duration{15 * time.Second, 30 * time.Second}
	for _, d := range lengths {
		seg := recordingtest.Cut(t, d)
		if again := recordingtest.Cut(t, d); &again.Data[0] != &seg.Data[0] {
			t.Errorf("%s: cut twice", d)
		}
		if seg.Duration != d || seg.Codec == "" || len(seg.Data) == 0 {
			t.Fatalf("segment = %s %q %d bytes", seg.Duration, seg.Codec, len(seg.Data))
		}
	}
	mediatest.Need(t)
	for _, d := range lengths {
		path := filepath.Join(t.TempDir(), "seg.mp4")
		if err := os.WriteFile(path, recordingtest.Cut(t, d).Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if got := mediatest.Duration(t, path); got != d {
			t.Errorf("ffprobe duration %s, want %s", got, d)
		}
	}
}

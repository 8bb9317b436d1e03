package mediaworker

import (
	"os"
	"testing"
	"time"

	"github.com/opennvr/vms/media"
)

// BenchmarkSegmenter measures the per-frame cost of segmenting the demo
// stream (640x360, 25 fps, ~200 kbit/s) into 30 s files on local disk.
func BenchmarkSegmenter(b *testing.B) {
	track, sample := loadH264(b, "demo.h264", 10*time.Second)
	period := 10 * time.Second
	bytesPerFrame := 0
	for _, f := range sample {
		bytesPerFrame += len(f.Payload)
	}
	bytesPerFrame /= len(sample)

	s, err := NewSegmenter(SegmenterConfig{
		Dir:    b.TempDir(),
		Tracks: []media.Track{track},
		// Delete each segment as it completes: the benchmark writes GBs.
		OnSegment: func(seg Segment) error { return os.Remove(seg.Path) },
	})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(bytesPerFrame))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		f := sample[i%len(sample)]
		shift := time.Duration(i/len(sample)) * period
		f.DTS += shift
		f.PTS += shift
		f.Wall = f.Wall.Add(shift)
		if err := s.WriteFrame(f); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

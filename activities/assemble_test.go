package activities_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/media/mediatest"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/recording/recordingtest"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

// TestAssembleClip joins real segments (four of 30 s from t0, keyframes
// every 2 s) into the clip's MP4 and checks it with ffmpeg: it decodes
// cleanly and lasts what was recorded of the range, give or take the GOP
// the cut rounds to at each end.
func TestAssembleClip(t *testing.T) {
	mediatest.Need(t)
	const seg = 30 * time.Second
	tests := []struct {
		name        string
		from, to    time.Duration // the clip's range, from t0
		missing     []int         // recordings whose objects are gone
		want        time.Duration // media in the clip
		wantNoMedia bool
	}{
		{"aligned", 30 * time.Second, 90 * time.Second, nil, 60 * time.Second, false},
		// Cut on keyframes: from the one at 14 s to the one at 106 s.
		{"unaligned", 15 * time.Second, 105 * time.Second, nil, 90 * time.Second, false},
		{"range past the recordings", 60 * time.Second, 180 * time.Second, nil, 60 * time.Second, false},
		// The second recording's object is gone: left out, the gap closed.
		{"missing object skipped", 0, 120 * time.Second, []int{1}, 90 * time.Second, false},
		{"no objects", 0, 120 * time.Second, []int{0, 1, 2, 3}, 0, true},
	}
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		objects, _ := s3test.Start(t)
		w.acts.Objects = objects
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				// Each case a day of its own: a clip gathers every recording
				// of the channel in its range.
				base := t0.Add(time.Duration(i) * 24 * time.Hour)
				recs := recordingtest.Add(t, st, objects, w.ch.ID, base, 4, seg)
				for _, i := range tt.missing {
					if err := objects.Delete(ctx, recs[i].Key); err != nil {
						t.Fatal(err)
					}
				}
				clip := w.newClip(t, base.Add(tt.from), base.Add(tt.to))
				if _, err := w.acts.AppendClipRecordings(ctx, clip.ID.String()); err != nil {
					t.Fatal(err)
				}

				res, err := w.acts.AssembleClip(ctx, clip.ID.String())
				key := recording.ClipKey(w.ch.ID, clip.ID)
				if tt.wantNoMedia {
					wantPermanent(t, err, activities.ErrNoMedia)
					if _, err := objects.Head(ctx, key); !errors.Is(err, objectstore.ErrNotFound) {
						t.Errorf("clip object after NoMedia: %v, want none", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if res.ObjectKey != key {
					t.Errorf("object key = %q, want %q", res.ObjectKey, key)
				}
				path := download(t, objects, key, res.Size)
				if msg := mediatest.DecodeErrors(t, path); msg != "" {
					t.Fatalf("ffmpeg decode errors:\n%s", msg)
				}
				d := mediatest.Duration(t, path)
				if (d - tt.want).Abs() > recordingtest.GOP {
					t.Errorf("clip lasts %s, want %s ± one GOP (%s)", d, tt.want, recordingtest.GOP)
				}
				if reported := time.Duration(res.DurationSeconds * float64(time.Second)); (reported - d).Abs() > 50*time.Millisecond {
					t.Errorf("result says %s, ffprobe %s", reported, d)
				}
			})
		}

		ctx := context.Background()
		clip := w.newClip(t, t0, t0.Add(time.Minute))
		if _, err := st.DB.NewDelete().Model((*store.Clip)(nil)).Where("id = ?", clip.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := w.acts.AssembleClip(ctx, clip.ID.String())
		wantPermanent(t, err, activities.ErrClipDeleted)
		_, err = w.acts.AssembleClip(ctx, "not-a-uuid")
		wantPermanent(t, err, activities.ErrBadInput)
	})
}

// BenchmarkAssembleClip assembles a past hour of 120 recordings of 30 s
// (one segment's bytes uploaded 120 times; ~90 MB read) into one MP4. It
// reports, besides the time per clip, the peak heap in use above the
// starting point (sampled every millisecond), the bytes allocated per clip,
// and the growth of the process's peak RSS (VmHWM, reset before the loop;
// the embedded S3 server is a separate process).
//
//	go test -run '^$' -bench AssembleClip -benchtime 5x ./activities/
func BenchmarkAssembleClip(b *testing.B) {
	ctx := context.Background()
	st := storetest.Open(b, "sqlite")
	w := newWorld(b, st)
	objects, _ := s3test.Start(b)
	w.acts.Objects = objects
	recordingtest.Add(b, st, objects, w.ch.ID, t0, 120, 30*time.Second)
	clip := w.newClip(b, t0, t0.Add(time.Hour))
	if _, err := w.acts.AppendClipRecordings(ctx, clip.ID.String()); err != nil {
		b.Fatal(err)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore, hwmOK := resetPeakRSS()
	peak := sampleHeap()
	b.ResetTimer()
	var res activities.AssembleResult
	for range b.N {
		var err error
		if res, err = w.acts.AssembleClip(ctx, clip.ID.String()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	peakHeap := peak()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if res.DurationSeconds != 3600 {
		b.Fatalf("clip lasts %v s, want 3600", res.DurationSeconds)
	}
	const mb = 1 << 20
	b.ReportMetric(float64(peakHeap-min(peakHeap, before.HeapInuse))/mb, "peak-heap-MB")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/mb, "alloc-MB/op")
	if hwm, ok := procStatusKB("VmHWM"); ok && hwmOK {
		b.ReportMetric(float64(hwm-min(hwm, rssBefore))/1024, "rss-peak-growth-MB")
	}
	b.ReportMetric(float64(res.Size)/mb, "clip-MB")
}

// sampleHeap samples HeapInuse every millisecond until the returned
// function is called, which returns the highest value seen.
func sampleHeap() func() uint64 {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var peak uint64
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(stop)
		wg.Wait()
		return peak
	}
}

// resetPeakRSS resets the process's VmHWM to its current RSS (Linux,
// /proc/self/clear_refs) and returns that RSS in kB.
func resetPeakRSS() (uint64, bool) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, false
	}
	return procStatusKB("VmRSS")
}

func procStatusKB(field string) (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// download copies an object to a temporary file, checking its size.
func download(t *testing.T, objects *objectstore.Client, key string, size int64) string {
	t.Helper()
	rc, info, err := objects.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	path := filepath.Join(t.TempDir(), "clip.mp4")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if n != size || info.Size != size {
		t.Fatalf("%s holds %d bytes (head %d), the result says %d", key, n, info.Size, size)
	}
	return path
}

package watch

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/source"
)

// TestLiveHeapFlat: watch's live heap (after a collection) does not grow
// once its windows are full. It replays IOMTGUARD_MEMORY_CAPTURE (at least
// two days of capture, e.g. iomtguard simulate --beds 20 --duration 48h),
// measures the live heap every 4 hours of capture time, and fails when the
// second day's largest exceeds the first day's by more than 10 %. The
// process's resident set over the same replay: scripts/watch_memory.sh.
func TestLiveHeapFlat(t *testing.T) {
	path := os.Getenv("IOMTGUARD_MEMORY_CAPTURE")
	if path == "" {
		t.Skip("set IOMTGUARD_MEMORY_CAPTURE to a capture of 48 hours or more")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src := source.Stream("-", f, source.Options{})
	var first int64
	type sample struct {
		hour int64
		mb   float64
	}
	var samples []sample
	w, err := New(Options{Input: src, Stats: src.Stats(), SourceKind: "stream",
		// Publish makes each minute's full State, as a history does.
		Publish: func(m int64, st *analysis.State) {
			if first == 0 {
				first = m
			}
			if (m-first)%240 != 0 || m == first {
				return
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			samples = append(samples, sample{(m - first) / 60, float64(ms.HeapAlloc) / 1e6})
		}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var day1, day2 float64
	for _, s := range samples {
		t.Logf("capture hour %3d: live heap %.1f MB", s.hour, s.mb)
		if s.hour <= 24 {
			day1 = max(day1, s.mb)
		} else {
			day2 = max(day2, s.mb)
		}
	}
	if day2 == 0 {
		t.Fatalf("the capture covers %d hours: it needs more than 24", samples[len(samples)-1].hour)
	}
	t.Logf("%d samples in %v: first day's largest %.1f MB, second day's %.1f MB", len(samples), time.Since(t0).Round(time.Second), day1, day2)
	if day2 > 1.1*day1 {
		t.Errorf("the live heap grew: %.1f MB on the second day against %.1f MB on the first", day2, day1)
	}
}

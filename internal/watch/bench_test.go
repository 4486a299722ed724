package watch

import (
	"context"
	"os"
	"testing"

	"github.com/iomtguard/iomtguard/internal/source"
)

// BenchmarkWatchStream: watch - on the 1.09M-frame benchmark capture
// (IOMTGUARD_BENCH_PCAP; made by scripts/bench.sh), every detector on, no
// history: frames per second.
func BenchmarkWatchStream(b *testing.B) {
	path := os.Getenv("IOMTGUARD_BENCH_PCAP")
	if path == "" {
		b.Skip("set IOMTGUARD_BENCH_PCAP to the benchmark capture (scripts/bench.sh builds it)")
	}
	for i := 0; i < b.N; i++ {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		src := source.Stream("-", f, source.Options{})
		w, err := New(Options{Input: src, Stats: src.Stats(), SourceKind: "stream"})
		if err != nil {
			b.Fatal(err)
		}
		sum, err := w.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		b.ReportMetric(float64(sum.Frames)/b.Elapsed().Seconds()*float64(i+1), "frames/s")
	}
}

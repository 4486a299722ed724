package detect_test

import (
	"context"
	"os"
	"testing"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// BenchmarkAnalyze measures the whole analysis (one pass, models, report
// data) with and without the detectors, on $IOMTGUARD_BENCH_PCAP (the
// 1.09M-frame benchmark capture; see scripts/bench.sh) or the built-in demo.
// Detection may add at most 20 % (issue D).
//
//	IOMTGUARD_BENCH_PCAP=/tmp/iomtguard-bench/big-benign.pcap go test ./internal/detect -run - -bench Analyze -count 6
func BenchmarkAnalyze(b *testing.B) {
	path := os.Getenv("IOMTGUARD_BENCH_PCAP")
	open := func() pipeline.Input {
		if path != "" {
			in, err := pipeline.OpenInput(path)
			if err != nil {
				b.Fatal(err)
			}
			return in
		}
		in, err := pipeline.NewInput(demo.Name, demo.Open())
		if err != nil {
			b.Fatal(err)
		}
		return in
	}
	for _, v := range []struct {
		name              string
		withDetect, async bool
	}{{"without-detectors", false, false}, {"with-detectors", true, false}, {"with-detectors-async", true, true}} {
		withDetect := v.withDetect
		b.Run(v.name, func(b *testing.B) {
			var frames int64
			for b.Loop() {
				in := open()
				an := analysis.New(analysis.Options{})
				cons := []pipeline.Consumer{an}
				var fn analysis.FindingsFunc
				if withDetect {
					det, err := detect.New(nil)
					if err != nil {
						b.Fatal(err)
					}
					cons = append(cons, det)
					fn = det.Findings
				}
				if v.async {
					cons = []pipeline.Consumer{pipeline.Async(cons...)}
				}
				sum, err := pipeline.New(pipeline.Options{}, cons...).Run(context.Background(), in)
				if err != nil {
					b.Fatal(err)
				}
				an.Result(sum, fn)
				in.Close()
				frames = sum.Frames
			}
			b.ReportMetric(float64(frames)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

package analysis_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// fig1 are the seed's Figure 1 columns.
var fig1 = []string{"frame.time_delta", "frame.time_relative", "frame.len", "tcp.srcport", "tcp.dstport",
	"tcp.time_delta", "tcp.len", "tcp.ack"}

type pandasDescribe map[string]map[string]*float64

// analyse runs the analysis over one capture.
func analyse(t *testing.T, path string) *analysis.Result {
	t.Helper()
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	an := analysis.New(analysis.Options{})
	sum, err := pipeline.New(pipeline.Options{}, an).Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return an.Result(sum, nil)
}

// TestDescribeEqualsPandas checks that describe in the analysis equals
// pandas' describe() of tshark's field export (scripts/numeric_fixtures.py)
// for the Figure 1 columns, to 1e-9 relative, on the test captures and on the
// shared ones.
func TestDescribeEqualsPandas(t *testing.T) {
	b, err := os.ReadFile("../../testdata/numeric/describe.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Captures map[string]pandasDescribe `json:"captures"`
		Shared   map[string]pandasDescribe `json:"shared"`
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	type job struct {
		path string
		want pandasDescribe
	}
	var jobs []job
	for name, want := range fx.Captures {
		jobs = append(jobs, job{filepath.Join("../../testdata/captures", name), want})
	}
	shared := "../../../shared/data/captures"
	if _, err := os.Stat(shared); err != nil {
		t.Logf("../shared is absent: the shared captures are skipped")
	} else {
		for name, want := range fx.Shared {
			jobs = append(jobs, job{filepath.Join(shared, name), want})
		}
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].path < jobs[j].path })
	for _, j := range jobs {
		t.Run(filepath.Base(j.path), func(t *testing.T) {
			r := analyse(t, j.path)
			for _, field := range fig1 {
				want := j.want[field]
				got, ok := r.Describe[field]
				if *want["count"] == 0 {
					if ok && got.Count != 0 {
						t.Errorf("%s: count %d, pandas 0", field, got.Count)
					}
					continue
				}
				if !ok {
					t.Errorf("%s: missing from describe", field)
					continue
				}
				for k, g := range map[string]float64{"count": float64(got.Count), "mean": got.Mean, "std": got.Std, "min": got.Min,
					"25%": got.Q25, "50%": got.Q50, "75%": got.Q75, "max": got.Max} {
					w := want[k]
					if w == nil {
						if !math.IsNaN(g) {
							t.Errorf("%s %s = %v, pandas NaN", field, k, g)
						}
						continue
					}
					if math.Abs(g-*w) > 1e-9*math.Max(math.Abs(*w), 1e-300) && !(g == 0 && *w == 0) {
						t.Errorf("%s %s = %.17g, pandas %.17g", field, k, g, *w)
					}
				}
			}
		})
	}
}

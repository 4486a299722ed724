// Package analysis holds the aggregators that the analyze and forecast
// commands attach to the pipeline (traffic series, the Figure 1 columns, MQTT
// types, lengths and topics, hosts, flows, the communication graph), and runs
// the models on what they gathered once the pass is over. Aggregators copy
// what they keep out of the events and grow only as documented on each.
package analysis

import (
	"fmt"
	"strings"
	"time"

	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// Metric is what a traffic series counts per interval.
type Metric uint8

const (
	MetricPackets Metric = iota // frames
	MetricBytes                 // bytes on the wire
	MetricMQTT                  // MQTT control packets
)

// ParseMetric reads "packets", "bytes" or "mqtt".
func ParseMetric(s string) (Metric, error) {
	switch strings.ToLower(s) {
	case "packets", "frames":
		return MetricPackets, nil
	case "bytes":
		return MetricBytes, nil
	case "mqtt":
		return MetricMQTT, nil
	}
	return 0, fmt.Errorf("analysis: metric %q: want packets, bytes or mqtt", s)
}

func (m Metric) String() string { return [...]string{"packets", "bytes", "mqtt"}[m] }

// MaxBins bounds a series (for 1 s intervals, 115 days); later intervals
// are dropped and counted in Series.Dropped.
const MaxBins = 10_000_000

// Series counts a metric per interval from the first frame's time, as the
// seed's np.bincount(floor(frame.time_relative)) does for one second. It
// grows by one float64 per interval of capture time, up to MaxBins.
type Series struct {
	pipeline.Nop
	Interval time.Duration
	Metric   Metric
	Values   []float64
	Dropped  int64
	started  bool
	first    int64
}

// NewSeries returns a series aggregator.
func NewSeries(interval time.Duration, m Metric) *Series {
	if interval <= 0 {
		interval = time.Second
	}
	return &Series{Interval: interval, Metric: m}
}

func (s *Series) bin(ts int64) int {
	if !s.started {
		s.started, s.first = true, ts
	}
	rel := ts - s.first
	if rel < 0 {
		return -1
	}
	return int(rel / int64(s.Interval))
}

func (s *Series) add(ts int64, v float64) {
	i := s.bin(ts)
	if i < 0 {
		return
	}
	if i >= MaxBins {
		s.Dropped++
		return
	}
	for len(s.Values) <= i {
		s.Values = append(s.Values, 0)
	}
	s.Values[i] += v
}

// OnFrame counts frames and bytes.
func (s *Series) OnFrame(f *pipeline.Frame) {
	switch s.Metric {
	case MetricPackets:
		s.add(f.TS, 1)
	case MetricBytes:
		s.add(f.TS, float64(f.Len))
	default:
		// Every interval with a frame exists, even with no MQTT in it.
		if i := s.bin(f.TS); i >= 0 && i < MaxBins {
			for len(s.Values) <= i {
				s.Values = append(s.Values, 0)
			}
		}
	}
}

// OnMQTT counts MQTT packets.
func (s *Series) OnMQTT(ev *pipeline.MQTT) {
	if s.Metric == MetricMQTT {
		s.add(ev.Frame.TS, 1)
	}
}

// Start is the time (ns) of the series' first interval.
func (s *Series) Start() int64 { return s.first }

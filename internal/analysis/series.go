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
	// Values[i] is interval Offset+i counted from the origin (the first
	// frame's time, or the one SetOrigin gave): the series of a window of
	// a longer run starts where its first frame falls.
	Values  []float64
	Offset  int
	Dropped int64
	started bool
	first   int64
}

// SetOrigin makes the intervals count from ts (the run's first frame)
// rather than from this series' first frame, so that the series of the
// minutes of a run line up when merged.
func (s *Series) SetOrigin(ts int64) { s.started, s.first = true, ts }

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
	i := s.index(ts)
	if i < 0 {
		return
	}
	s.Values[i] += v
}

// index is the position of ts in Values, growing Values to hold it (-1:
// before the series, or past MaxBins).
func (s *Series) index(ts int64) int {
	b := s.bin(ts)
	if b < 0 {
		return -1
	}
	if b-s.Offset >= MaxBins {
		s.Dropped++
		return -1
	}
	if len(s.Values) == 0 {
		s.Offset = b
	}
	if b < s.Offset {
		// Earlier than the first interval seen (frames out of order):
		// extend the series back.
		s.Values = append(make([]float64, s.Offset-b), s.Values...)
		s.Offset = b
	}
	i := b - s.Offset
	for len(s.Values) <= i {
		s.Values = append(s.Values, 0)
	}
	return i
}

// OnFrame counts frames and bytes.
func (s *Series) OnFrame(f *pipeline.Frame) { s.onFrameAt(f.TS, f.Len) }

// onFrameAt counts a frame of length bytes at ts.
func (s *Series) onFrameAt(ts int64, length int) {
	switch s.Metric {
	case MetricPackets:
		s.add(ts, 1)
	case MetricBytes:
		s.add(ts, float64(length))
	default:
		// Every interval with a frame exists, even with no MQTT in it.
		s.index(ts)
	}
}

// OnMQTT counts MQTT packets.
func (s *Series) OnMQTT(ev *pipeline.MQTT) {
	if s.Metric == MetricMQTT {
		s.add(ev.Frame.TS, 1)
	}
}

// Start is the time (ns) of the series' first interval (Values[0]).
func (s *Series) Start() int64 { return s.first + int64(s.Offset)*int64(s.Interval) }

// Origin is the time (ns) intervals are counted from.
func (s *Series) Origin() int64 { return s.first }

// Merge adds o's values (a series of the same run, interval and metric).
func (s *Series) Merge(o *Series) {
	if len(o.Values) == 0 {
		s.Dropped += o.Dropped
		return
	}
	if !s.started {
		s.started, s.first = true, o.first
	}
	// o's intervals in s's numbering (the same origin within a run).
	shift := int((o.first - s.first) / int64(s.Interval))
	lo := o.Offset + shift
	if len(s.Values) == 0 {
		s.Offset = lo
	}
	if lo < s.Offset {
		s.Values = append(make([]float64, s.Offset-lo), s.Values...)
		s.Offset = lo
	}
	for i, v := range o.Values {
		j := lo + i - s.Offset
		for len(s.Values) <= j {
			s.Values = append(s.Values, 0)
		}
		s.Values[j] += v
	}
	s.Dropped += o.Dropped
}

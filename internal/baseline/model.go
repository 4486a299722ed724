package baseline

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// Version of the baseline file.
const Version = 1

// Baseline is what was learned: the devices' and shapes' profiles, the
// forest and its threshold.
type Baseline struct {
	Tool    string              `json:"tool"`
	Version int                 `json:"version"`
	From    time.Time           `json:"from"`
	To      time.Time           `json:"to"`
	Devices map[string]*Profile `json:"devices"`
	Groups  map[string]*Profile `json:"groups"`
	// Ward pools every device's minutes: the normal a device with neither
	// a profile nor a shape of its own is compared with (an intruder's own
	// client ID: how unlike any device of the ward it is).
	Ward   *Profile `json:"ward"`
	Forest *Forest  `json:"forest"`
	// A window is anomalous when the forest scores it above
	// ForestThreshold or when a feature deviates from the device's normal
	// by more than DeviationThreshold standard deviations (the forest
	// cannot cut along a feature that never varied while learning, such as
	// new topics: the deviation catches those). Both are the highest of
	// the held-out learning windows (or the quantile FalseAlarmRate asks
	// for). A window's Score is the larger of its two ratios to them: above
	// 1 is anomalous.
	ForestThreshold    float64 `json:"forest_threshold"`
	DeviationThreshold float64 `json:"deviation_threshold"`
	FalseAlarmRate     float64 `json:"false_alarm_rate"`
	Trained            int     `json:"trained_windows"`
	HeldOut            int     `json:"held_out_windows"`
	Evicted            int64   `json:"devices_not_tracked,omitempty"`
}

// dims: each feature's deviation at the window scale and the damped one.
const dims = 2 * NumFeatures

// slowAlpha is the damped average's weight of a new window (half-life 10).
var slowAlpha = 1 - math.Pow(0.5, 0.1)

// Profile returns the profile a device is scored against and what it is
// ("" for the device's own): its own, its shape's, or the ward's; nil when
// there is none.
func (b *Baseline) Profile(key string) (p *Profile, against string) {
	if p := b.Devices[key]; p != nil && p.Windows >= 3 {
		return p, ""
	}
	if p := b.Groups[Shape(key)]; p != nil && p.Windows >= 3 {
		return p, Shape(key)
	}
	if b.Ward != nil && b.Ward.Windows >= 3 {
		return b.Ward, WardProfile
	}
	return nil, ""
}

// WardProfile names the ward's pooled profile in explanations.
const WardProfile = "the ward's devices"

// known is the set a tracker measures novelty against.
func (b *Baseline) known(key string) (*Profile, bool) {
	p, against := b.Profile(key)
	return p, against != ""
}

// deviations describes v against p, with the device's damped average; a
// feature the window has no value of, or the profile never had, is at 0.
func deviations(p *Profile, v, slow *Vector, undef uint16) []float64 {
	x := make([]float64, dims)
	for i := range NumFeatures {
		if undef&(1<<i) != 0 || p.N[i] == 0 {
			continue
		}
		sd := p.Std(i)
		x[i] = clampZ((v[i] - p.Mean[i]) / sd)
		// The damped average of iid windows has a smaller spread.
		x[NumFeatures+i] = clampZ((slow[i] - p.Mean[i]) / (sd * math.Sqrt(slowAlpha/(2-slowAlpha))))
	}
	return x
}

func clampZ(z float64) float64 { return max(-50, min(50, z)) }

func maxDeviation(x []float64) float64 {
	var m float64
	for _, z := range x {
		m = max(m, math.Abs(z))
	}
	return m
}

// score is a window's score: the larger of its forest score and its
// largest deviation, each as a ratio to its threshold.
func (b *Baseline) score(x []float64) float64 {
	return max(b.Forest.Score(x)/b.ForestThreshold, maxDeviation(x)/b.DeviationThreshold)
}

// --- learning -------------------------------------------------------------------

// maxObs bounds the windows kept to train the forest (about 40 MB); the
// profiles take every window.
const maxObs = 300_000

// Learner learns a baseline from the event stream (a pipeline consumer).
type Learner struct {
	pipeline.Nop
	b        *Baseline
	tr       *Tracker
	obs      []Obs
	dropped  int64
	from, to int64
}

// NewLearner starts learning.
func NewLearner() *Learner {
	l := &Learner{b: &Baseline{Tool: "iomtguard", Version: Version, Devices: map[string]*Profile{}, Groups: map[string]*Profile{},
		Ward: &Profile{}}}
	l.tr = NewTracker(func(key string) (*Profile, bool) { return l.b.Devices[key], false }, l.Add)
	return l
}

// OnMQTT feeds the learner.
func (l *Learner) OnMQTT(m *pipeline.MQTT) {
	if m.Frame != nil {
		l.span(m.Frame.TS)
	}
	l.tr.OnMQTT(m)
}

func (l *Learner) span(ts int64) {
	if l.from == 0 || ts < l.from {
		l.from = ts
	}
	l.to = max(l.to, ts)
}

// OnTLS, OnFrame and OnFlow follow devices seen through TLS.
func (l *Learner) OnTLS(ev *pipeline.TLS)    { l.tr.OnTLS(ev) }
func (l *Learner) OnFrame(f *pipeline.Frame) { l.span(f.TS); l.tr.OnFrame(f) }
func (l *Learner) OnFlow(f *pipeline.Flow)   { l.tr.OnFlow(f) }

// Finish drops the windows under way (they are not complete).
func (l *Learner) Finish(*pipeline.Summary) { l.tr.Flush() }

// Add learns one window.
func (l *Learner) Add(o Obs) {
	p := l.b.Devices[o.Key]
	if p == nil {
		if len(l.b.Devices) >= maxDevices {
			l.b.Evicted++
			return
		}
		p = &Profile{}
		l.b.Devices[o.Key] = p
	}
	g := l.b.Groups[Shape(o.Key)]
	if g == nil {
		g = &Profile{}
		l.b.Groups[Shape(o.Key)] = g
	}
	// A shape's topics are kept as shapes too (11/air is #/air).
	w := l.b.Ward
	for _, t := range o.Topics {
		p.learnTopic(t)
		g.learnTopic(Shape(t))
		w.learnTopic(Shape(t))
	}
	for _, a := range o.Peers {
		p.learnPeer(a)
		g.learnPeer(a)
		w.learnPeer(a)
	}
	if o.Partial {
		return
	}
	p.add(o.V, o.Undefined)
	g.add(o.V, o.Undefined)
	w.add(o.V, o.Undefined)
	o.Topics, o.Peers, o.NewTopics, o.NewPeers = nil, nil, nil, nil
	if len(l.obs) < maxObs {
		l.obs = append(l.obs, o)
	} else {
		l.dropped++
	}
}

// BuildOptions tune Build.
type BuildOptions struct {
	// FalseAlarmRate: the share of held-out learning windows allowed above
	// the threshold (0: none, the highest score is the threshold).
	FalseAlarmRate float64
	// Margin raises the thresholds past the held-out learning minutes'
	// highest: the forest's by this much of a score (default 0.05), the
	// deviation's by this share (default 25 %). The highest of n minutes
	// estimates a 1-in-n rate; a ward watched for months needs fewer
	// alarms than that.
	ForestMargin, DeviationMargin float64
	Trees                         int // default 100
	Sample                        int // default 256
	Seed                          uint64
}

// Build finishes learning: the forest is trained on every other learning
// window of each device and its threshold set on the others.
func (l *Learner) Build(o BuildOptions) (*Baseline, error) {
	b := l.b
	if l.from != 0 {
		b.From, b.To = time.Unix(0, l.from).UTC(), time.Unix(0, l.to).UTC()
	}
	for _, p := range b.Devices {
		p.sortSets()
	}
	for _, p := range b.Groups {
		p.sortSets()
	}
	b.Ward.sortSets()
	if o.Trees == 0 {
		o.Trees = 100
	}
	if o.ForestMargin == 0 {
		o.ForestMargin = 0.05
	}
	if o.DeviationMargin == 0 {
		o.DeviationMargin = 0.25
	}
	if o.Sample == 0 {
		o.Sample = 256
	}
	// Each device's windows in time order, with its damped average.
	sort.SliceStable(l.obs, func(i, j int) bool {
		if l.obs[i].Key != l.obs[j].Key {
			return l.obs[i].Key < l.obs[j].Key
		}
		return l.obs[i].Window < l.obs[j].Window
	})
	var train, held [][]float64
	var slow Vector
	for i, ob := range l.obs {
		p, _ := b.Profile(ob.Key)
		if i == 0 || l.obs[i-1].Key != ob.Key {
			slow = ob.V
			if p != nil {
				slow = p.Mean
			}
		}
		for k := range slow {
			if ob.Undefined&(1<<k) == 0 {
				slow[k] += slowAlpha * (ob.V[k] - slow[k])
			}
		}
		if p == nil {
			continue
		}
		x := deviations(p, &ob.V, &slow, ob.Undefined)
		if ob.Window%2 == 0 {
			train = append(train, x)
		} else {
			held = append(held, x)
		}
	}
	if len(train) < 16 || len(held) < 16 {
		return nil, fmt.Errorf("baseline: %d device windows learned: too few to learn from (at least 32 complete minutes of MQTT devices are needed; learn longer)", len(train)+len(held))
	}
	f, err := TrainForest(train, o.Trees, o.Sample, o.Seed)
	if err != nil {
		return nil, err
	}
	b.Forest, b.Trained, b.HeldOut, b.FalseAlarmRate = f, len(train), len(held), o.FalseAlarmRate
	scores := make([]float64, len(held))
	devs := make([]float64, len(held))
	for i, x := range held {
		scores[i], devs[i] = f.Score(x), maxDeviation(x)
	}
	slices.Sort(scores)
	slices.Sort(devs)
	k := max(0, len(scores)-1-int(math.Floor(o.FalseAlarmRate*float64(len(scores)))))
	b.ForestThreshold = min(scores[k]+o.ForestMargin, 0.99)
	b.DeviationThreshold = min(max(devs[k], 3)*(1+o.DeviationMargin), 50)
	return b, nil
}

// --- scoring --------------------------------------------------------------------

// Scored is a window scored against the baseline.
type Scored struct {
	Obs
	Score     float64
	Anomalous bool
	Group     bool   // scored against another profile than its own (it has none)
	Against   string // that profile: a shape (bed#-pump) or WardProfile
	Why       string
	// Unscored: the device has no profile, its own or its shape's (a new
	// device, which the inventory reports): no score.
	Unscored bool
}

// Scorer scores windows (a pipeline consumer through Tracker).
type Scorer struct {
	B    *Baseline
	tr   *Tracker
	slow map[string]*Vector
	emit func(Scored)
}

// NewScorer scores windows against b, calling emit for each.
func NewScorer(b *Baseline, emit func(Scored)) *Scorer {
	s := &Scorer{B: b, slow: map[string]*Vector{}, emit: emit}
	s.tr = NewTracker(b.known, s.score)
	return s
}

// OnMQTT, OnTLS, OnFrame and OnFlow feed the scorer.
func (s *Scorer) OnMQTT(m *pipeline.MQTT)   { s.tr.OnMQTT(m) }
func (s *Scorer) OnTLS(ev *pipeline.TLS)    { s.tr.OnTLS(ev) }
func (s *Scorer) OnFrame(f *pipeline.Frame) { s.tr.OnFrame(f) }
func (s *Scorer) OnFlow(f *pipeline.Flow)   { s.tr.OnFlow(f) }

func (s *Scorer) score(o Obs) {
	p, against := s.B.Profile(o.Key)
	group := against != ""
	if p == nil {
		if !o.Partial {
			s.emit(Scored{Obs: o, Unscored: true})
		}
		return
	}
	sl := s.slow[o.Key]
	if sl == nil {
		if len(s.slow) >= maxDevices {
			return
		}
		m := p.Mean
		sl = &m
		s.slow[o.Key] = sl
	}
	if o.Partial {
		return
	}
	// The damped average takes the window only if it is not anomalous:
	// an attack's minutes would otherwise keep the average away from the
	// device's normal long after the attack (a minute of 600 publishes
	// held a pump's average off for an hour), while a slow drift, each
	// minute within bounds, still moves it.
	next := *sl
	for k := range next {
		if o.Undefined&(1<<k) == 0 {
			next[k] += slowAlpha * (o.V[k] - next[k])
		}
	}
	x := deviations(p, &o.V, &next, o.Undefined)
	sc := Scored{Obs: o, Score: s.B.score(x), Group: group, Against: against}
	sc.Anomalous = sc.Score > 1
	if !sc.Anomalous {
		*sl = next
	}
	if sc.Anomalous {
		sc.Why = explain(p, &o, x)
	}
	s.emit(sc)
}

// explain says in words what moved most: the features furthest from the
// device's normal.
func explain(p *Profile, o *Obs, x []float64) string {
	type moved struct {
		i int
		z float64
	}
	var ms []moved
	for i := range NumFeatures {
		if z := math.Max(math.Abs(x[i]), math.Abs(x[NumFeatures+i])); z >= 3 {
			ms = append(ms, moved{i, z})
		}
	}
	sort.SliceStable(ms, func(a, b int) bool { return ms[a].z > ms[b].z })
	var parts []string
	for _, m := range ms {
		if len(parts) == 3 {
			break
		}
		v, mean := o.V[m.i], p.Mean[m.i]
		switch m.i {
		case FNewTopics:
			if len(o.NewTopics) > 0 {
				parts = append(parts, fmt.Sprintf("published to %s for the first time", quoteList(o.NewTopics, v)))
			}
		case FNewPeers:
			if len(o.NewPeers) > 0 {
				parts = append(parts, fmt.Sprintf("talked with %s for the first time", quoteList(o.NewPeers, v)))
			}
		case FPeriod:
			parts = append(parts, fmt.Sprintf("its period went from %s to %s", seconds(mean), seconds(v)))
		case FPublishes:
			what := "messages"
			if o.TLS {
				what = "TLS records"
			}
			parts = append(parts, fmt.Sprintf("it published %g %s in the minute (usually %.1f)", v, what, mean))
		case FPayloadMean:
			parts = append(parts, fmt.Sprintf("its messages went from %.0f to %.0f bytes on average", mean, v))
		case FPayloadMax:
			parts = append(parts, fmt.Sprintf("its largest message was %.0f bytes (usually %.0f)", v, mean))
		case FTopics:
			parts = append(parts, fmt.Sprintf("it published to %g topics (usually %.1f)", v, mean))
		case FQoSShare:
			parts = append(parts, fmt.Sprintf("%.0f %% of its messages asked for delivery guarantees (QoS 1 or 2; usually %.0f %%)", 100*v, 100*mean))
		case FRetained:
			parts = append(parts, fmt.Sprintf("it sent %g retained messages (usually %.1f)", v, mean))
		case FSubscribes:
			parts = append(parts, fmt.Sprintf("it subscribed %g times (usually %.1f)", v, mean))
		case FConnects:
			parts = append(parts, fmt.Sprintf("it connected %g times in the minute (usually %.1f)", v, mean))
		case FPeers:
			parts = append(parts, fmt.Sprintf("it talked with %g addresses (usually %.1f)", v, mean))
		}
	}
	if len(parts) == 0 {
		return "an unusual combination of small changes"
	}
	return strings.Join(parts, "; ")
}

func quoteList(xs []string, n float64) string {
	shown := make([]string, len(xs))
	for i, x := range xs {
		shown[i] = Printable(x, 128)
	}
	s := strings.Join(shown, ", ")
	if int(n) > len(xs) {
		s += fmt.Sprintf(" and %d more", int(n)-len(xs))
	}
	return s
}

func seconds(s float64) string {
	switch {
	case s == 0:
		return "none (one message or less)"
	case s < 1:
		return fmt.Sprintf("%.2g s", s)
	}
	return fmt.Sprintf("%.3g s", s)
}

// --- files ----------------------------------------------------------------------

// Save writes b, gzipped JSON.
func (b *Baseline) Save(path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	cw := &countWriter{w: zw}
	err = json.NewEncoder(cw).Encode(b)
	if err == nil && cw.n > maxFile {
		err = fmt.Errorf("baseline: %d MB of JSON, over the %d MB a baseline may be (Load would refuse it): learn from fewer devices or topics", cw.n>>20, maxFile>>20)
	}
	if e := zw.Close(); err == nil {
		err = e
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

// ErrBaseline reports a file that is not a usable baseline.
var ErrBaseline = errors.New("not an iomtguard baseline")

// maxFile bounds what Load inflates.
const maxFile = 256 << 20

// Load reads a baseline written by Save, checking it.
func Load(path string) (*Baseline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}

// Read reads a baseline (gzipped JSON, as Save writes), checking it.
func Read(r io.Reader) (*Baseline, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBaseline, err)
	}
	var b Baseline
	dec := json.NewDecoder(io.LimitReader(zr, maxFile))
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBaseline, err)
	}
	if b.Tool != "iomtguard" || b.Version != Version {
		return nil, fmt.Errorf("%w: tool %q version %d (want iomtguard version %d)", ErrBaseline, b.Tool, b.Version, Version)
	}
	if b.Forest == nil {
		return nil, fmt.Errorf("%w: no model", ErrBaseline)
	}
	if err := b.Forest.check(dims); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBaseline, err)
	}
	if !(b.ForestThreshold >= 0.3 && b.ForestThreshold <= 1) || !(b.DeviationThreshold >= 3 && b.DeviationThreshold <= 50) {
		return nil, fmt.Errorf("%w: thresholds %v and %v", ErrBaseline, b.ForestThreshold, b.DeviationThreshold)
	}
	if len(b.Devices) > maxDevices || len(b.Groups) > maxDevices {
		return nil, fmt.Errorf("%w: %d devices (at most %d)", ErrBaseline, len(b.Devices), maxDevices)
	}
	all := []map[string]*Profile{b.Devices, b.Groups}
	if b.Ward != nil {
		all = append(all, map[string]*Profile{WardProfile: b.Ward})
	}
	for _, ps := range all {
		for k, p := range ps {
			if p == nil || p.Windows < 0 || p.Windows > 1e12 || len(p.Topics) > maxProfileTopics || len(p.Peers) > maxProfilePeers {
				return nil, fmt.Errorf("%w: profile %q is damaged", ErrBaseline, k)
			}
			for i := range NumFeatures {
				if math.IsNaN(p.Mean[i]) || math.IsInf(p.Mean[i], 0) || math.IsNaN(p.M2[i]) || p.M2[i] < 0 {
					return nil, fmt.Errorf("%w: profile %q is damaged", ErrBaseline, k)
				}
			}
		}
	}
	if b.Devices == nil {
		b.Devices = map[string]*Profile{}
	}
	if b.Groups == nil {
		b.Groups = map[string]*Profile{}
	}
	return &b, nil
}

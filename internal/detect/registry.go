package detect

import (
	"fmt"
	"hash/maphash"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iomtguard/iomtguard/internal/baseline"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/policy"
)

// Param is a detector's tunable threshold.
type Param struct {
	Name    string
	Default float64
	Unit    string // "", "s" (a duration in seconds), "/s"
	Doc     string
}

// Spec describes one detector: its name, the finding IDs it reports, its
// rule in words, its parameters and how to build it.
type Spec struct {
	Name   string
	IDs    []string
	Rule   string
	Params []Param
	New    func(*Env) Detector
}

// Detector is a pipeline consumer that reports findings once the pass is
// over. It implements the pipeline.Consumer methods it needs (embed
// pipeline.Nop for the rest).
type Detector interface {
	pipeline.Consumer
	// Findings returns what the detector found; m carries the models'
	// outputs (traffic anomalies, k-means outliers).
	Findings(m Models) []Finding
}

// Registry is the ordered list of detectors: attacks, then posture, then
// behaviour. Adding a detector means adding it here.
var Registry = []Spec{
	bruteforceSpec,
	connectFloodSpec,
	publishFloodSpec,
	slowDoSSpec,
	malformedSpec,
	synFloodSpec,
	scanSpec,
	wildcardSpec,
	takeoverSpec,
	cleartextSpec,
	anonymousSpec,
	clinicalDataSpec,
	inventorySpec,
	weakTLSSpec,
	legacySpec,
	trafficSpec,
	outlierSpec,
	deviceSpec,
}

// Env is what a detector is built with: the policy and its thresholds, and
// the engine's table of per-session state.
type Env struct {
	Policy *policy.Policy
	// Learned is what the anomaly.device-behaviour detector learns and
	// scores with (Options).
	Learned  Options
	spec     *Spec
	seed     maphash.Seed
	sessions *sessTable
}

// hashSeed is the seed of the detectors' hashes of addresses, IDs and
// credentials: the engine's, one for every detector it makes (made here
// for an Env a test builds without one).
func (e *Env) hashSeed() maphash.Seed {
	if e.seed == (maphash.Seed{}) {
		e.seed = maphash.MakeSeed()
	}
	return e.seed
}

// sessState is the detectors' state of one MQTT session, looked up once per
// event by the engine (one map access instead of one per detector).
type sessState struct {
	counted    bool      // cleartext: the session is counted
	clientSent bool      // malformed: the client sent MQTT
	lastClient int64     // slow-dos: the client's last MQTT packet
	live       *liveSess // client-id-takeover: the session's entry
	topic      []byte    // clinical-data: the session's last topic
	topicState *topicState
	pub        *pubAgg // publish-flood: the source's counters
}

// sessTable holds sessState per session; cur is the state of the session
// of the event being dispatched (nil when there is none).
type sessTable struct {
	m   map[*pipeline.Session]*sessState
	cur *sessState
}

// P returns the value of the detector's parameter name (the policy's, or
// the default).
func (e *Env) P(name string) float64 {
	if t, ok := e.Policy.Thresholds[e.spec.Name][name]; ok {
		return t.V
	}
	for _, p := range e.spec.Params {
		if p.Name == name {
			return p.Default
		}
	}
	panic("detect: " + e.spec.Name + " has no parameter " + name)
}

// D returns a duration parameter in nanoseconds.
func (e *Env) D(name string) int64 { return int64(e.P(name) * 1e9) }

// Engine runs every detector in the registry as one pipeline consumer.
type Engine struct {
	dets                            []Detector
	names                           []string
	frame, mqtt, tls, flow, anomaly []pipeline.Consumer
	policy                          *policy.Policy
	sessions                        *sessTable
}

// Options are the detectors' inputs other than the policy.
type Options struct {
	// Baseline is what anomaly.device-behaviour scores against (nil: the
	// detector is idle, unless it learns).
	Baseline *baseline.Baseline
	// LearnFor makes the detector learn a baseline over this much capture
	// time first, then build it (Learned is called with it, or with the
	// error), then score against it (watch --learn).
	LearnFor time.Duration
	Learned  func(*baseline.Baseline, error)
	// Build tunes the baseline built after LearnFor.
	Build baseline.BuildOptions
	// Scored, when set, receives every window scored (eval's ranking
	// measures).
	Scored func(baseline.Scored)
}

// New builds the detectors with policy p (nil: the default policy). It
// fails when the policy sets a threshold no detector has.
func New(p *policy.Policy) (*Engine, error) { return NewWith(p, Options{}) }

// NewWith builds the detectors with policy p and the other inputs o.
func NewWith(p *policy.Policy, o Options) (*Engine, error) {
	if p == nil {
		p = &policy.Policy{}
	}
	if err := checkThresholds(p); err != nil {
		return nil, err
	}
	e := &Engine{policy: p, sessions: &sessTable{m: map[*pipeline.Session]*sessState{}}}
	seed := maphash.MakeSeed()
	for i := range Registry {
		s := &Registry[i]
		d := s.New(&Env{Policy: p, Learned: o, spec: s, seed: seed, sessions: e.sessions})
		e.dets = append(e.dets, d)
		e.names = append(e.names, s.Name)
		// Dispatch only to the detectors that use an event kind.
		if u, ok := d.(interface{ uses() events }); ok {
			ev := u.uses()
			if ev&evFrame != 0 {
				e.frame = append(e.frame, d)
			}
			if ev&evMQTT != 0 {
				e.mqtt = append(e.mqtt, d)
			}
			if ev&evTLS != 0 {
				e.tls = append(e.tls, d)
			}
			if ev&evFlow != 0 {
				e.flow = append(e.flow, d)
			}
			if ev&evAnomaly != 0 {
				e.anomaly = append(e.anomaly, d)
			}
			continue
		}
		e.frame, e.mqtt, e.tls, e.flow, e.anomaly = append(e.frame, d), append(e.mqtt, d), append(e.tls, d), append(e.flow, d), append(e.anomaly, d)
	}
	return e, nil
}

type events uint8

const (
	evFrame events = 1 << iota
	evMQTT
	evTLS
	evFlow
	evAnomaly
)

// Check reports what New would refuse in a policy: a threshold no detector
// has, or a negative one.
func Check(p *policy.Policy) error { return checkThresholds(p) }

func checkThresholds(p *policy.Policy) error {
	byName := map[string]*Spec{}
	var names []string
	for i := range Registry {
		byName[Registry[i].Name] = &Registry[i]
		names = append(names, Registry[i].Name)
	}
	for det, params := range p.Thresholds {
		s := byName[det]
		if s == nil {
			line := 0
			for _, v := range params {
				line = v.Line
				break
			}
			return fmt.Errorf("%w: %s:%d: thresholds: no detector named %q (detectors: %s)", policy.ErrPolicy, p.File, line, det, strings.Join(names, ", "))
		}
		for name, v := range params {
			found := false
			var known []string
			for _, pr := range s.Params {
				known = append(known, pr.Name)
				found = found || pr.Name == name
			}
			if !found {
				return fmt.Errorf("%w: %s:%d: thresholds.%s: no parameter %q (parameters: %s)", policy.ErrPolicy, p.File, v.Line, det, name, strings.Join(known, ", "))
			}
			if v.V < 0 {
				return fmt.Errorf("%w: %s:%d: thresholds.%s.%s: negative", policy.ErrPolicy, p.File, v.Line, det, name)
			}
		}
	}
	return nil
}

func (e *Engine) OnFrame(f *pipeline.Frame) {
	for _, d := range e.frame {
		d.OnFrame(f)
	}
}

func (e *Engine) OnMQTT(m *pipeline.MQTT) {
	// The map is the record (bounded, and what OnFlow reads); the
	// session's slot finds the same state without a lookup (profiling
	// analyze: the map lookup per packet was a third of the engine's own
	// time).
	var st *sessState
	if m.Session != nil {
		st, _ = m.Session.Slot(e).(*sessState)
	}
	if st == nil {
		st = e.sessions.m[m.Session]
		if st == nil {
			st = &sessState{}
			if len(e.sessions.m) < maxKeys {
				e.sessions.m[m.Session] = st
			}
		}
		if m.Session != nil && e.sessions.m[m.Session] == st {
			m.Session.SetSlot(e, st)
		}
	}
	e.sessions.cur = st
	for _, d := range e.mqtt {
		d.OnMQTT(m)
	}
	e.sessions.cur = nil
}

func (e *Engine) OnTLS(t *pipeline.TLS) {
	for _, d := range e.tls {
		d.OnTLS(t)
	}
}

func (e *Engine) OnFlow(f *pipeline.Flow) {
	if f.Session != nil {
		e.sessions.cur = e.sessions.m[f.Session]
	}
	for _, d := range e.flow {
		d.OnFlow(f)
	}
	e.sessions.cur = nil
	if f.Kind == pipeline.FlowClosed && f.Session != nil {
		delete(e.sessions.m, f.Session)
		f.Session.SetSlot(e, nil)
	}
}

func (e *Engine) OnAnomaly(a *pipeline.Anomaly) {
	for _, d := range e.anomaly {
		d.OnAnomaly(a)
	}
}

// Findings collects every detector's findings, sorted by severity.
func (e *Engine) Findings(m Models) []Finding {
	out := []Finding{}
	for i, d := range e.dets {
		for _, f := range d.Findings(m) {
			f.Detector = e.names[i]
			out = append(out, f)
		}
	}
	Sort(out)
	return out
}

// newFinding fills a finding from the catalogue.
func newFinding(id string, first, last int64, ev Evidence) Finding {
	c, ok := Lookup(id)
	if !ok {
		panic("detect: no catalogue entry " + id)
	}
	f := Finding{ID: id, Severity: c.Severity, Title: c.Title, Explanation: c.Explanation, Category: c.Category,
		Evidence: ev, Controls: c.Controls, Defence: c.Defence}
	if first != 0 {
		f.First = time.Unix(0, first).UTC()
	}
	if last != 0 {
		f.Last = time.Unix(0, last).UTC()
	}
	return f
}

// Helpers shared by the detectors.

// ring holds the times of the last n events of one key, to test "n events
// within a window" in O(1) per event. It keeps only what can still make a
// hit: an event older than window before the newest is dropped rather than
// kept, so a key with a slow, steady rate holds a few times, not n
// (profiling analyze of 21.8M frames from 20,000 publishers found a full
// ring per source, 4 kB each, at a third of the live heap). With times in
// order its answers are those of a ring of n.
type ring struct {
	ts     []int64 // circular; grows (doubling, up to n) while its events fall within window
	oldest int     // index of the oldest time kept
	count  int
	n      int
	window int64
}

func newRing(n int, window int64) *ring {
	n = max(n, 1)
	return &ring{ts: make([]int64, min(n, 8)), n: n, window: window}
}

// add records an event at t and returns the span of the last n events,
// or -1 when those are not all kept (fewer than n seen, or some older than
// window: the span then exceeds window).
func (r *ring) add(t int64) int64 {
	if r.count == len(r.ts) {
		if len(r.ts) < r.n && t-r.ts[r.oldest] <= r.window {
			// Everything kept is still within the window: make room.
			grown := make([]int64, min(2*len(r.ts), r.n))
			k := copy(grown, r.ts[r.oldest:])
			copy(grown[k:], r.ts[:r.oldest])
			r.ts, r.oldest = grown, 0
		} else {
			// Drop the oldest: it is outside the window, or the ring holds n.
			r.oldest = (r.oldest + 1) % len(r.ts)
			r.count--
		}
	}
	r.ts[(r.oldest+r.count)%len(r.ts)] = t
	r.count++
	if r.count < r.n {
		return -1
	}
	return t - r.ts[r.oldest]
}

// within is how many of the events kept fall in the window up to now
// (their times in order, but for a clock that stepped back).
func (r *ring) within(now int64) int {
	at := func(i int) int64 { return r.ts[(r.oldest+i)%len(r.ts)] }
	return r.count - sort.Search(r.count, func(i int) bool { return at(i) > now-r.window })
}

// exemplars keeps the first few frame numbers as examples.
type exemplars []int

const maxExamples = 10

func (e *exemplars) add(frame int) {
	if len(*e) < maxExamples && frame > 0 {
		*e = append(*e, frame)
	}
}

// span is a time span of events.
type span struct{ first, last int64 }

func (s *span) add(t int64) {
	if s.first == 0 || t < s.first {
		s.first = t
	}
	if t > s.last {
		s.last = t
	}
}

// counter counts per key with a cap on the number of keys; keys beyond the
// cap are counted together. Counters made with a shared budget also stop
// taking keys once their budget is spent: a detector's counters together
// then hold at most that many keys, however many counters there are.
type counter[K comparable] struct {
	m      map[K]int64
	cap    int
	budget *int // keys the counters sharing it may still take; nil: none
	Other  int64
}

// newCounterIn is a counter that takes its keys from budget too.
func newCounterIn[K comparable](cap int, budget *int) *counter[K] {
	return &counter[K]{m: map[K]int64{}, cap: cap, budget: budget}
}

func (c *counter[K]) add(k K, n int64) {
	if _, ok := c.m[k]; !ok {
		if len(c.m) >= c.cap || c.budget != nil && *c.budget <= 0 {
			c.Other += n
			return
		}
		if c.budget != nil {
			*c.budget--
		}
	}
	c.m[k] += n
}

// top returns up to n keys by count (then by their string form).
func top[K comparable](m map[K]int64, n int, str func(K) string) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return str(ks[i]) < str(ks[j])
	})
	if len(ks) > n {
		ks = ks[:n]
	}
	return ks
}

// sorted returns the keys of a set, sorted, at most n (with "+N more").
func sorted(set map[string]bool, n int) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) > n {
		rest := len(out) - n
		out = append(out[:n], fmt.Sprintf("+%d more", rest))
	}
	return out
}

// maxKeys bounds every per-key table of a detector (sources, client IDs,
// topics): beyond it new keys are counted together, so memory stays bounded
// on hostile input.
const maxKeys = 100000

// printable makes a network string safe and short for evidence.
func printable(s string, n int) string {
	// Most names are printable ASCII: kept as they are (the loop below,
	// rune by rune into a builder, was a tenth of analyze on a capture of
	// 1M distinct topics).
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] >= 0x20 && s[i] < 0x7f
	}
	if plain {
		if len(s) > n {
			return s[:n] + "…" // a new string: s is not kept
		}
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if i >= n {
			b.WriteString("…")
			break
		}
		switch {
		case r == utf8.RuneError:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func fmtTime(ns int64) string {
	if ns == 0 {
		return "?"
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05")
}

func joinShort(s []string, n int) string {
	if len(s) > n {
		return strings.Join(s[:n], ", ") + fmt.Sprintf(" and %d more", len(s)-n)
	}
	return strings.Join(s, ", ")
}

// joinSet is joinShort of the whole set, sorted: a title counts every
// member, not the list that sorted cut to 20 (a scan by 100 sources was
// titled "a, b, c and 18 more"; reading the count back from sorted's
// "+N more" let a client ID of that form rewrite titles).
func joinSet(set map[string]bool, n int) string {
	return joinShort(sortedKeys(set), n)
}

// nopDetector is embedded by detectors that read only the models.
type nopDetector struct{ pipeline.Nop }

func (nopDetector) uses() events { return 0 }

// idString shows a client ID in evidence: printable, and named when empty
// (the broker assigns one).
func idString(id string) string {
	if id == "" {
		return "(empty client ID)"
	}
	return printable(id, 64)
}

// plural writes "1 session", "2 sessions".
func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

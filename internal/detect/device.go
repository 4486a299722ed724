package detect

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/iomtguard/iomtguard/internal/baseline"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// --- anomaly.device-behaviour ------------------------------------------------------

var deviceSpec = Spec{
	Name: "device-behaviour",
	IDs:  []string{"anomaly.device-behaviour"},
	Rule: "Needs a learned baseline (iomtguard baseline learn; analyze and watch --baseline, watch --learn): each " +
		"MQTT device's minute of traffic (publishes, payload sizes, topics and new topics, period, QoS and retain, " +
		"subscriptions, connections, peers and new peers) is compared with the device's learned normal (or, for a " +
		"device without one, with devices of the same name shape: bed7-pump with bed#-pump) at two time scales, and " +
		"an isolation forest trained on the learning period scores it. Runs of min_windows or more consecutive " +
		"minutes above the baseline's threshold (the highest score among held-out learning minutes) make the " +
		"finding, with what moved most in words. Without a baseline it finds nothing.",
	Params: []Param{{"min_windows", 1, "", "consecutive anomalous minutes of one device that make a finding"}},
	New:    newDeviceBehaviour,
}

// maxDeviceEpisodes bounds the episodes kept (the finding lists the first
// ones; the counts stay exact).
const maxDeviceEpisodes = 1000

type devEpisode struct {
	key         string
	first, last int64 // window numbers
	windows     int
	score       float64 // the highest
	why         string  // of the highest
	against     string  // the profile it was compared with, when not its own
}

type deviceBehaviour struct {
	pipeline.Nop
	env        *Env
	minWindows int
	sc         *baseline.Scorer
	learner    *baseline.Learner
	learnUntil int64
	open       map[string]*devEpisode
	done       []devEpisode
	scored     int64
	anomalous  int64
	episodes   int64
	devices    map[string]bool
}

func newDeviceBehaviour(e *Env) Detector {
	d := &deviceBehaviour{env: e, minWindows: max(1, int(e.P("min_windows"))), open: map[string]*devEpisode{}, devices: map[string]bool{}}
	switch {
	case e.Learned.Baseline != nil:
		d.sc = baseline.NewScorer(e.Learned.Baseline, d.window)
	case e.Learned.LearnFor > 0:
		d.learner = baseline.NewLearner()
	}
	return d
}

func (d *deviceBehaviour) uses() events {
	if d.sc == nil && d.learner == nil {
		return 0
	}
	return evMQTT | evTLS | evFrame | evFlow
}

// The events a learner or a scorer takes (MQTT, and TLS devices' frames).
type devEvents interface {
	OnMQTT(*pipeline.MQTT)
	OnTLS(*pipeline.TLS)
	OnFrame(*pipeline.Frame)
	OnFlow(*pipeline.Flow)
}

// to is where an event at ts goes: the learner until the learning period
// is over (then the baseline is built), then the scorer; nil for none.
func (d *deviceBehaviour) to(ts int64) devEvents {
	if d.learner != nil {
		if d.learnUntil == 0 {
			d.learnUntil = ts + int64(d.env.Learned.LearnFor)
		}
		if ts < d.learnUntil {
			return d.learner
		}
		d.learned()
	}
	if d.sc != nil {
		return d.sc
	}
	return nil
}

func (d *deviceBehaviour) OnFrame(f *pipeline.Frame) {
	// Frames matter only for devices seen through TLS: every frame passes
	// here, and the rest (MQTT's among them) go no further.
	if f.Proto != pipeline.ProtoTLS {
		return
	}
	if c := d.to(f.TS); c != nil {
		c.OnFrame(f)
	}
}

func (d *deviceBehaviour) OnTLS(t *pipeline.TLS) {
	if t.Frame == nil {
		return
	}
	if c := d.to(t.Frame.TS); c != nil {
		c.OnTLS(t)
	}
}

func (d *deviceBehaviour) OnFlow(f *pipeline.Flow) {
	if d.learner != nil {
		d.learner.OnFlow(f)
	} else if d.sc != nil {
		d.sc.OnFlow(f)
	}
}

func (d *deviceBehaviour) OnMQTT(m *pipeline.MQTT) {
	if m.Frame == nil {
		return
	}
	if c := d.to(m.Frame.TS); c != nil {
		c.OnMQTT(m)
	}
}

// learned ends learning: the baseline is built, handed over, and scored
// against from now on.
func (d *deviceBehaviour) learned() {
	d.learner.Finish(nil)
	b, err := d.learner.Build(d.env.Learned.Build)
	d.learner = nil
	if f := d.env.Learned.Learned; f != nil {
		f(b, err)
	}
	if err != nil {
		return // the detector stays idle; Learned was told why
	}
	d.sc = baseline.NewScorer(b, d.window)
}

// window takes a scored window.
func (d *deviceBehaviour) window(s baseline.Scored) {
	if f := d.env.Learned.Scored; f != nil {
		f(s)
	}
	if s.Unscored {
		return
	}
	d.scored++
	ep := d.open[s.Key]
	if ep != nil && (!s.Anomalous || s.Window != ep.last+1) {
		d.closeEpisode(ep)
		ep = nil
	}
	if !s.Anomalous {
		return
	}
	d.anomalous++
	if ep == nil {
		if len(d.open) >= maxKeys {
			return
		}
		ep = &devEpisode{key: s.Key, first: s.Window, against: s.Against}
		d.open[s.Key] = ep
	}
	ep.last = s.Window
	ep.windows++
	if s.Score > ep.score {
		ep.score, ep.why = s.Score, s.Why
	}
}

func (d *deviceBehaviour) closeEpisode(ep *devEpisode) {
	delete(d.open, ep.key)
	if ep.windows < d.minWindows {
		return
	}
	d.episodes++
	if len(d.devices) < maxKeys {
		d.devices[ep.key] = true
	}
	if len(d.done) < maxDeviceEpisodes {
		d.done = append(d.done, *ep)
	}
}

func (d *deviceBehaviour) Findings(Models) []Finding {
	if d.sc == nil {
		return nil
	}
	eps := append([]devEpisode(nil), d.done...)
	episodes := d.episodes
	devices := map[string]bool{}
	for k := range d.devices {
		devices[k] = true
	}
	for _, ep := range d.open {
		if ep.windows >= d.minWindows {
			eps = append(eps, *ep)
			episodes++
			devices[ep.key] = true
		}
	}
	if len(eps) == 0 {
		return nil
	}
	sort.Slice(eps, func(i, j int) bool {
		if eps[i].first != eps[j].first {
			return eps[i].first < eps[j].first
		}
		return eps[i].key < eps[j].key
	})
	w := int64(baseline.Window)
	ev := Evidence{Counts: map[string]int64{"episodes": episodes, "devices": int64(len(devices)), "minutes_scored": d.scored,
		"anomalous_minutes": d.anomalous}}
	var sp span
	ids := map[string]bool{}
	for _, ep := range eps {
		sp.add(ep.first * w)
		sp.add((ep.last + 1) * w)
		if len(ids) < 20 {
			ids[ep.key] = true
		}
		if len(ev.Notes) < 20 {
			whom := idString(ep.key)
			if ep.against != "" {
				whom += " (no baseline of its own: compared with " + printable(ep.against, 64) + ")"
			}
			ev.Notes = append(ev.Notes, fmt.Sprintf("%s, %s to %s (%s, %.1f× the threshold): %s", whom,
				time.Unix(0, ep.first*w).UTC().Format("2006-01-02 15:04"), time.Unix(0, (ep.last+1)*w).UTC().Format("15:04"),
				plural(int64(ep.windows), "minute"), ep.score, ep.why))
		}
	}
	for id := range ids {
		ev.ClientIDs = append(ev.ClientIDs, idString(id))
	}
	sort.Strings(ev.ClientIDs)
	f := newFinding("anomaly.device-behaviour", sp.first, sp.last, ev)
	names := ev.ClientIDs[:min(3, len(ev.ClientIDs))]
	more := ""
	if len(devices) > len(names) {
		more = fmt.Sprintf(" and %d more", len(devices)-len(names))
	}
	f.Title = fmt.Sprintf("%s behaved unlike %s learned baseline: %s%s", plural(int64(len(devices)), "device"),
		map[bool]string{true: "its", false: "their"}[len(devices) == 1], strings.Join(names, ", "), more)
	return []Finding{f}
}

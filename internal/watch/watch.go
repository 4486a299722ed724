// Package watch is continuous monitoring: the pipeline of analyze, run on a
// live source, with the same detectors and aggregators, turned into what a
// person watching a ward needs: incidents that open, update and close, the
// device inventory with its changes, windows of recent traffic (5 minutes,
// an hour, a day) with the ARIMA model refitted on the last hour and its
// anomalies fed back to the detectors, alerts, and the history.
//
// One goroutine runs the pipeline and everything that touches its state;
// the model fits run beside it on merged copies; the dashboard, the metrics
// and the alert outputs read published snapshots and queues, never the
// pipeline's data. Time is the capture's: windows roll and incidents close
// as the frames' clock (or a live source's ticks) says.
package watch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iomtguard/iomtguard/internal/alert"
	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/history"
	"github.com/iomtguard/iomtguard/internal/incident"
	"github.com/iomtguard/iomtguard/internal/inventory"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/policy"
	"github.com/iomtguard/iomtguard/internal/source"
)

// Options configure a watch. Zero values give the defaults.
type Options struct {
	Input      pipeline.Input
	Stats      *source.Stats // the source's counters (drops), when it has them
	SourceKind string        // interface, stream, directory, replay
	Filter     string
	Policy     *policy.Policy
	// Detect carries the learned baseline (or what to learn) to the
	// anomaly.device-behaviour detector.
	Detect    detect.Options
	Analysis  analysis.Options
	Pipeline  pipeline.Options
	History   *history.DB // nil: no history
	Retain    time.Duration
	Alerts    alert.Multi
	Incidents incident.Options
	Inventory inventory.Options
	// Name labels alerts and stored rows (the sensor; "" for a lone watch).
	Name string
	// Evaluate is the most often findings are evaluated, in wall time
	// (default 250 ms; at least once per second of capture time).
	Evaluate time.Duration
	Logger   *slog.Logger
	// Publish, when set, receives each minute's State as it closes (a
	// sensor sends it to its hub).
	Publish func(minute int64, st *analysis.State)
	// Uplink, when set, receives what a sensor sends its hub: each closed
	// minute's State, every incident event and device change once stored
	// (internal/hub.Sensor).
	Uplink Uplink
}

// UplinkStatus is an Uplink that says how its link is (shown on the
// dashboard; the status when not fine).
type UplinkStatus interface {
	Status() (note string, fine bool)
}

// Uplink is a sensor's link to its hub. Its methods must not block the
// pipeline; a minute's State must not be changed once handed over.
type Uplink interface {
	Minute(minute int64, st *analysis.State)
	// Facts are the minute's session facts for the hub's cross-site
	// detectors (detect.Group).
	Facts(minute int64, f *detect.Facts)
	Incident(incident.Event)
	Device(inventory.Device)
}

// Watch runs one live analysis.
type Watch struct {
	opts Options
	det  *detect.Engine
	inv  *inventory.Inventory
	trk  *incident.Tracker
	log  *slog.Logger

	// Pipeline goroutine state.
	run       int64 // the run's ID in the history (its start, ns)
	origin    int64
	clock     int64 // capture time reached
	cur       *analysis.Analyzer
	curMin    int64
	minutes   []*analysis.State // the last 60 closed minutes, light
	hours     [][]byte          // the last 24 closed hours, light and packed (analysis.State.Pack)
	hourAcc   *analysis.Analyzer
	hourOf    int64
	lastEval  time.Time
	lastPub   time.Time
	savedAt   time.Time // wall time of the last save of the minute under way
	unclocked int       // frames since advance last read the wall clock
	evalTS    int64
	saveTS    int64
	retainTS  int64
	totals    totals
	rates     *rates
	models    detect.Models
	anoms     []detect.SeriesAnomaly
	facts     *detect.FactCollector // with an Uplink: what the hub's cross-site detectors need
	started   time.Time

	// Windows computed beside the pipeline.
	fitting atomic.Bool
	lastFit time.Time
	winMu   sync.Mutex
	windows map[string]*Window
	fitDone chan fitResult

	snap atomic.Pointer[Snapshot]
}

type totals struct {
	frames, bytes, mqtt  int64
	byType               [16]int64
	published, delivered int64 // PUBLISH from clients, and from brokers to clients
}

type fitResult struct {
	name string
	win  *Window
	mod  *detect.Models
}

// New prepares a watch; Run starts it.
func New(opts Options) (*Watch, error) {
	if opts.Input == nil {
		return nil, fmt.Errorf("watch: no input")
	}
	if opts.Policy == nil {
		opts.Policy = &policy.Policy{}
	}
	if opts.Evaluate <= 0 {
		opts.Evaluate = 250 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	det, err := detect.NewWith(opts.Policy, opts.Detect)
	if err != nil {
		return nil, err
	}
	w := &Watch{opts: opts, det: det, inv: inventory.New(opts.Inventory), log: opts.Logger, windows: map[string]*Window{},
		fitDone: make(chan fitResult, 4), rates: newRates(300), started: time.Now()}
	if opts.Uplink != nil {
		w.facts = detect.NewFactCollector()
	}
	last := int64(0)
	if h := opts.History; h != nil {
		last = h.LastIncident()
	}
	w.trk = incident.New(opts.Incidents, last)
	interval := opts.Analysis.Interval
	if interval <= 0 {
		interval = time.Second
	}
	w.models = detect.Models{SeriesInterval: interval, SeriesMetric: "packets"}
	if h := opts.History; h != nil {
		// Go on from the stored incidents and devices.
		ins, err := h.Incidents(opts.Name, time.Time{})
		if err != nil {
			return nil, err
		}
		for i := len(ins) - 1; i >= 0; i-- {
			w.trk.Restore(ins[i])
		}
		devs, err := h.Devices(opts.Name)
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			w.inv.Restore(d)
		}
	}
	w.publish()
	return w, nil
}

// Run reads the input to its end (or until ctx ends), then flushes
// everything: the last minute, the incidents, the history.
func (w *Watch) Run(ctx context.Context) (*pipeline.Summary, error) {
	// The consumers run behind decoding, on the other core; a live
	// source's quiet moments (Idle records) and ticks hand their events on
	// at once, so nothing waits behind a quiet network.
	eng := pipeline.New(w.opts.Pipeline, pipeline.Async(w, w.det, w.inv))
	sum, err := eng.Run(ctx, w.opts.Input)
	if err == context.Canceled || err == context.DeadlineExceeded {
		err = nil
	}
	w.finish()
	return sum, err
}

// Snapshot is the latest published view (never nil).
func (w *Watch) Snapshot() *Snapshot { return w.snap.Load() }

// Incidents are the incidents tracked (for tests and the final summary);
// call after Run.
func (w *Watch) Incidents() []incident.Incident { return w.trk.Incidents() }

// --- the pipeline consumer -------------------------------------------------

// roll makes sure the analyzer of ts's minute is the current one.
func (w *Watch) roll(ts int64) {
	if w.cur == nil {
		w.origin, w.run = ts, ts
		w.curMin = ts / int64(time.Minute)
		w.cur = w.newAnalyzer()
		w.hourOf = w.curMin / 60
		return
	}
	if m := ts / int64(time.Minute); m > w.curMin {
		old := w.cur
		w.closeMinute()
		w.curMin = m
		w.cur = w.newAnalyzer()
		w.cur.ReuseColumns(old)
	}
}

func (w *Watch) newAnalyzer() *analysis.Analyzer {
	o := w.opts.Analysis
	o.Origin = w.origin
	// The windows keep no Figure 1 columns (lightState): only the history
	// and a hub read a minute's.
	o.NoColumns = w.opts.History == nil && w.opts.Publish == nil && w.opts.Uplink == nil
	return analysis.New(o)
}

// closeMinute stores the minute that ends and adds it to the windows.
func (w *Watch) closeMinute() {
	// Without a history or a hub the minute has no Figure 1 columns
	// (newAnalyzer: NoColumns), so its State costs no sorting.
	st := w.cur.State()
	w.cur = nil
	if h := w.opts.History; h != nil {
		// The minute is over: nothing changes its State now.
		h.SaveClosedMinute(w.opts.Name, w.run, w.curMin, st)
	}
	if w.opts.Publish != nil {
		w.opts.Publish(w.curMin, st)
	}
	if w.opts.Uplink != nil {
		w.opts.Uplink.Minute(w.curMin, st)
		if f := w.facts.Take(); f != nil {
			w.opts.Uplink.Facts(w.curMin, f)
		}
	}
	light := lightState(st)
	w.minutes = append(w.minutes, light)
	if len(w.minutes) > 60 {
		w.minutes = w.minutes[1:]
	}
	// Hours: merge the minutes of each hour as it closes.
	if hr := w.curMin / 60; hr != w.hourOf || w.hourAcc == nil {
		if w.hourAcc != nil {
			if b, err := lightState(w.hourAcc.State()).Pack(); err != nil {
				w.log.Warn("watch: the day window loses an hour", "error", err)
			} else {
				w.hours = append(w.hours, b)
			}
			if len(w.hours) > 24 {
				w.hours = w.hours[1:]
			}
		}
		w.hourAcc, w.hourOf = w.newAnalyzer(), hr
	}
	w.hourAcc.Merge(withoutSeries(light))
}

// withoutSeries drops a state's per-interval series: the day's window
// shows tables and the graph, not a series of 86,400 seconds (which made it
// grow all day and weigh on the fits: TestLiveHeapFlat, watch_memory.sh).
func withoutSeries(st *analysis.State) *analysis.State {
	l := *st
	l.Packets.Values, l.MQTT.Values = nil, nil
	return &l
}

// lightState drops what the windows do not show (the Figure 1 columns,
// which hold values): the windows keep tables, series and points.
func lightState(st *analysis.State) *analysis.State {
	l := *st
	for i := range l.All {
		l.All[i] = l.All[i].Light()
		l.MQ[i] = l.MQ[i].Light()
	}
	return &l
}

func (w *Watch) OnFrame(f *pipeline.Frame) {
	w.roll(f.TS)
	w.cur.OnFrame(f)
	w.totals.frames++
	w.totals.bytes += int64(f.Len)
	w.rates.frame(f.TS)
	w.advance(f.TS, false)
}

func (w *Watch) OnMQTT(m *pipeline.MQTT) {
	w.roll(m.Frame.TS)
	w.cur.OnMQTT(m)
	w.totals.mqtt++
	w.totals.byType[m.Pkt.Type&15]++
	if m.Pkt.Type == 3 {
		if m.FromClient {
			w.totals.published++
		} else {
			w.totals.delivered++
		}
	}
	w.rates.mqtt(m.Frame.TS, m.Pkt.Type)
	if w.facts != nil {
		w.facts.OnMQTT(m)
	}
}

func (w *Watch) OnTLS(t *pipeline.TLS) {
	if w.cur != nil {
		w.cur.OnTLS(t)
	}
}

func (w *Watch) OnFlow(f *pipeline.Flow) {
	if w.cur != nil {
		w.cur.OnFlow(f)
	}
	if w.facts != nil {
		w.facts.OnFlow(f)
	}
}

func (w *Watch) OnAnomaly(a *pipeline.Anomaly) {
	if w.cur != nil {
		w.cur.OnAnomaly(a)
	}
}

// OnTick advances the capture clock on a quiet network.
func (w *Watch) OnTick(ts int64) {
	if w.cur != nil {
		w.roll(ts)
	}
	w.rates.tick(ts)
	w.advance(ts, true)
}

// advance runs what is due at capture time ts. A frame reads the wall
// clock only every clockEvery frames (a replay at full speed reaches a new
// second of capture time every few frames, and reading the clock there was
// a twentieth of the consumers' time); a tick always reads it.
func (w *Watch) advance(ts int64, tick bool) {
	if ts > w.clock {
		w.clock = ts
	}
	// Findings: every Evaluate of wall time, and at least every second of
	// capture time (a replay at full speed is not evaluated per second).
	if w.evalTS == 0 {
		w.evalTS = ts
	}
	if ts-w.evalTS < int64(time.Second) {
		return // before the wall clock is read: this is the path of most frames
	}
	if w.unclocked++; !tick && w.unclocked < clockEvery && ts-w.evalTS < int64(time.Minute) {
		return
	}
	w.unclocked = 0
	now := time.Now()
	if now.Sub(w.lastEval) < w.opts.Evaluate && ts-w.evalTS < int64(time.Minute) {
		return
	}
	w.evalTS, w.lastEval = ts, now
	w.collectFits()
	w.evaluate(time.Unix(0, ts).UTC())
	// The current minute, stored every 10 s of capture time and 2 s of
	// wall time (a crash loses at most that; a replay at full speed does
	// not store each minute twice), and retention. SaveMinute encodes the
	// State before it returns: the analyzer's own serves.
	if h := w.opts.History; h != nil && w.cur != nil && ts-w.saveTS >= int64(10*time.Second) && now.Sub(w.savedAt) >= 2*time.Second {
		w.saveTS, w.savedAt = ts, now
		if err := h.SaveMinute(w.opts.Name, w.run, w.curMin, w.cur.State()); err != nil {
			w.log.Error("history: minute not stored", "error", err)
		}
		if w.opts.Retain > 0 && ts-w.retainTS >= int64(time.Hour) {
			w.retainTS = ts
			h.Retain(time.Unix(0, ts-int64(w.opts.Retain)))
		}
	}
	w.startFits()
	// The dashboard's view as often as a person can see it change (a
	// replay at full speed evaluates every minute of capture time, a
	// thousand times a second).
	if now.Sub(w.lastPub) >= w.opts.Evaluate {
		w.lastPub = now
		w.publish()
	}
}

const clockEvery = 64

// evaluate asks the detectors, and passes incidents and inventory changes on.
func (w *Watch) evaluate(now time.Time) {
	w.models.Start = time.Unix(0, w.origin)
	w.models.SeriesAnomalies = w.anoms
	fs := w.det.Findings(w.models)
	for _, ev := range w.trk.Observe(now, fs) {
		w.emit(alert.FromIncident(ev, w.opts.Name), func(u Uplink) { u.Incident(ev) }, func(after func()) {
			if h := w.opts.History; h != nil {
				h.SaveIncident(w.opts.Name, ev, after)
				return
			}
			after()
		})
	}
	for _, ev := range w.inv.Events() {
		a := alert.Alert{Kind: "inventory", Event: ev.Kind, ID: "inventory." + ev.Kind, Severity: "info", Title: deviceTitle(ev),
			FirstSeen: ev.Device.FirstSeen, LastSeen: ev.Device.LastSeen, Device: ev.Device, Source: w.opts.Name, At: ev.At}
		if ev.Kind == "new" {
			a.Severity = "low"
		}
		w.emit(a, func(u Uplink) { u.Device(ev.Device) }, func(after func()) {
			if h := w.opts.History; h != nil {
				h.SaveDevice(w.opts.Name, ev.Device, after)
				return
			}
			after()
		})
	}
}

func deviceTitle(ev inventory.Event) string {
	d := ev.Device
	switch ev.Kind {
	case "new":
		return fmt.Sprintf("New device on the network: %s (%s, %s) from %v", d.Key, d.Kind, d.Role, d.Addrs)
	case "silent":
		return fmt.Sprintf("Device gone silent: %s (%s), last seen %s", d.Key, d.Kind, d.LastSeen.Format(time.RFC3339))
	}
	return fmt.Sprintf("Device back: %s (%s)", d.Key, d.Kind)
}

// emit stores an event, then announces it (alerts, the hub): what was
// announced is in the history.
func (w *Watch) emit(a alert.Alert, up func(Uplink), store func(after func())) {
	store(func() {
		w.opts.Alerts.Send(a)
		if w.opts.Uplink != nil {
			up(w.opts.Uplink)
		}
	})
}

// finish closes the run: the last minute, the incidents' pending updates,
// the inventory, the history.
func (w *Watch) finish() {
	w.collectFits()
	if w.cur != nil {
		at := time.Unix(0, w.clock).UTC()
		w.closeMinute()
		// The windows with every minute, so that the last model's anomalies
		// reach the detectors' last word.
		w.fitAll()
		w.evaluate(at)
		for _, ev := range w.trk.Flush(at) {
			w.emit(alert.FromIncident(ev, w.opts.Name), func(u Uplink) { u.Incident(ev) }, func(after func()) {
				if h := w.opts.History; h != nil {
					h.SaveIncident(w.opts.Name, ev, after)
					return
				}
				after()
			})
		}
	}
	if u := w.opts.Uplink; u != nil {
		for _, d := range w.inv.Devices() {
			u.Device(d)
		}
	}
	if h := w.opts.History; h != nil {
		for _, d := range w.inv.Devices() {
			h.SaveDevice(w.opts.Name, d, nil)
		}
		if err := h.Sync(); err != nil {
			w.log.Error("history", "error", err)
		}
	}
	w.publish()
}

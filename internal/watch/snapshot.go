package watch

import (
	"time"

	"github.com/iomtguard/iomtguard/internal/alert"
	"github.com/iomtguard/iomtguard/internal/incident"
	"github.com/iomtguard/iomtguard/internal/inventory"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/source"
)

// Snapshot is what the dashboard and the metrics show: published by the
// pipeline goroutine after each evaluation, read by anyone.
type Snapshot struct {
	Generated time.Time `json:"generated"`    // wall time
	Capture   time.Time `json:"capture_time"` // the capture clock
	Started   time.Time `json:"started"`
	Name      string    `json:"name,omitempty"`
	Source    struct {
		Input  string          `json:"input"`
		Kind   string          `json:"kind"`
		Filter string          `json:"filter,omitempty"`
		Stats  source.Snapshot `json:"stats"`
	} `json:"source"`
	Status string   `json:"status"` // ok, or what is wrong (drops, a history error)
	Notes  []string `json:"notes,omitempty"`
	Totals struct {
		Frames int64            `json:"frames"`
		Bytes  int64            `json:"bytes"`
		MQTT   int64            `json:"mqtt_packets"`
		ByType map[string]int64 `json:"mqtt_by_type"`
		// PUBLISH sent by clients (readings) and by brokers to subscribers.
		Published int64 `json:"publish_from_clients"`
		Delivered int64 `json:"publish_to_clients"`
	} `json:"totals"`
	Rates struct {
		End    time.Time            `json:"end"` // the last (filling) second
		Frames []float64            `json:"frames"`
		MQTT   map[string][]float64 `json:"mqtt"`
	} `json:"rates"`
	Windows   map[string]*Window     `json:"windows"`
	Incidents []incident.Incident    `json:"incidents"`
	Devices   []inventory.Device     `json:"devices"`
	Evicted   map[string]int64       `json:"evicted"`
	Alerts    map[string]alert.Stats `json:"alerts"`
	History   *HistoryStatus         `json:"history,omitempty"`
}

// HistoryStatus is the history database's state.
type HistoryStatus struct {
	Written int64  `json:"written"`
	Dropped int64  `json:"dropped"`
	Error   string `json:"error,omitempty"`
}

// MaxIncidentsShown bounds the incidents in a snapshot (open ones first).
const MaxIncidentsShown = 200

func (w *Watch) publish() {
	s := &Snapshot{Generated: time.Now().UTC(), Started: w.started.UTC(), Name: w.opts.Name, Windows: map[string]*Window{},
		Evicted: map[string]int64{}, Alerts: w.opts.Alerts.Stats()}
	if w.clock != 0 {
		s.Capture = time.Unix(0, w.clock).UTC()
	}
	s.Source.Input, s.Source.Kind, s.Source.Filter = w.opts.Input.Name(), w.opts.SourceKind, w.opts.Filter
	if w.opts.Stats != nil {
		s.Source.Stats = w.opts.Stats.Snapshot()
	}
	s.Totals.Frames, s.Totals.Bytes, s.Totals.MQTT = w.totals.frames, w.totals.bytes, w.totals.mqtt
	s.Totals.Published, s.Totals.Delivered = w.totals.published, w.totals.delivered
	s.Totals.ByType = map[string]int64{}
	for t, n := range w.totals.byType {
		if n > 0 {
			s.Totals.ByType[mqtt.Type(t).String()] = n
		}
	}
	fr, byType, end := w.rates.view()
	s.Rates.Frames, s.Rates.MQTT, s.Rates.End = fr, byType, time.Unix(end, 0).UTC()
	w.winMu.Lock()
	for k, v := range w.windows {
		s.Windows[k] = v
	}
	w.winMu.Unlock()
	s.Incidents = w.trk.Incidents()
	if len(s.Incidents) > MaxIncidentsShown {
		s.Incidents = s.Incidents[:MaxIncidentsShown]
	}
	s.Devices = w.inv.Devices()
	s.Evicted["devices"] = w.inv.Evicted
	s.Evicted["device_events"] = w.inv.EventsDropped
	s.Status = "ok"
	st := s.Source.Stats
	if st.KernelDrops > 0 || st.QueueDrops > 0 {
		s.Status = "dropping"
		s.Notes = append(s.Notes, "frames were dropped: the analysis misses them (see the source counters)")
	}
	if h := w.opts.History; h != nil {
		hs := &HistoryStatus{Written: h.Written.Load(), Dropped: h.Dropped.Load()}
		if err := h.Err(); err != nil {
			hs.Error = err.Error()
			s.Status = "history failing"
		}
		s.History = hs
	}
	for name, a := range s.Alerts {
		if a.Failed > 0 || a.Dropped > 0 {
			s.Notes = append(s.Notes, "alert output "+name+" lost alerts (see its counters)")
		}
	}
	if u, ok := w.opts.Uplink.(UplinkStatus); ok {
		note, fine := u.Status()
		s.Notes = append(s.Notes, note)
		if !fine && s.Status == "ok" {
			s.Status = note
		}
	}
	w.snap.Store(s)
}

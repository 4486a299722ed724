package hub

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/incident"
	"github.com/iomtguard/iomtguard/internal/inventory"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/watch"
)

// GroupView is the dashboard's view of every site.
const GroupView = "group"

// Snapshot is what the hub's dashboard shows of one view: watch's
// dashboard snapshot, built from the sensors' stored minutes, incidents and
// devices, with the views a page may choose.
type Snapshot struct {
	*watch.Snapshot
	Views []string `json:"views"`
	View  string   `json:"view"`
}

// viewCache keeps each view's snapshot for a few seconds: building one
// merges an hour of minutes and fits the hour's model.
type viewCache struct {
	mu     sync.Mutex
	at     map[string]time.Time
	snap   map[string]*Snapshot
	list   []string
	listAt time.Time
}

// maxDevicesShown bounds the devices a view lists.
const maxDevicesShown = 5000

// viewEvery is how long a view's snapshot is reused.
const viewEvery = 5 * time.Second

// Views lists the dashboard's views: the group, then each site with
// stored minutes.
func (h *Hub) Views() []string {
	h.views.mu.Lock()
	defer h.views.mu.Unlock()
	return h.viewsLocked()
}

// viewsLocked is Views with the cache held: the list is read from the
// history at most every viewEvery (a page's every request asks for it).
func (h *Hub) viewsLocked() []string {
	if h.views.list != nil && time.Since(h.views.listAt) < viewEvery {
		return h.views.list
	}
	srcs, _ := h.db.Sources()
	sites := map[string]bool{}
	for s := range srcs {
		if site, _, ok := strings.Cut(s, "/"); ok {
			sites[site] = true
		}
	}
	h.views.list, h.views.listAt = append([]string{GroupView}, sortedSet(sites)...), time.Now()
	return h.views.list
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// View is the dashboard's snapshot of a view ("" or GroupView: every
// site; else one site): the last 5 minutes and hour of its sensors'
// minutes merged (the hour with its k-means and ARIMA model), the
// incidents of the last day (the group's cross-site ones in every view),
// and the devices.
func (h *Hub) View(view string) *Snapshot {
	if view == "" {
		view = GroupView
	}
	h.views.mu.Lock()
	defer h.views.mu.Unlock()
	if h.views.snap == nil {
		h.views.snap, h.views.at = map[string]*Snapshot{}, map[string]time.Time{}
	}
	if s := h.views.snap[view]; s != nil && time.Since(h.views.at[view]) < viewEvery {
		return s
	}
	s := &Snapshot{Snapshot: h.build(view), Views: h.viewsLocked(), View: view}
	if len(h.views.snap) > 1000 {
		clear(h.views.snap)
	}
	h.views.snap[view], h.views.at[view] = s, time.Now()
	return s
}

func (h *Hub) build(view string) *watch.Snapshot {
	s := &watch.Snapshot{Generated: time.Now().UTC(), Started: h.started, Name: view, Status: "ok",
		Windows: map[string]*watch.Window{}, Evicted: map[string]int64{}}
	s.Source.Kind = "hub"
	s.Totals.ByType = map[string]int64{}
	s.Rates.MQTT = map[string][]float64{}
	if err := h.db.Err(); err != nil {
		s.Status = "history failing: " + err.Error()
	}
	all, _ := h.db.Sources()
	var srcs []string
	for src := range all {
		if view == GroupView || strings.HasPrefix(src, view+"/") {
			srcs = append(srcs, src)
		}
	}
	sort.Strings(srcs)
	sites := map[string]bool{}
	for _, src := range srcs {
		site, _, _ := strings.Cut(src, "/")
		sites[site] = true
	}
	s.Source.Input = view + ": " + plural(len(sites), "site") + ", " + plural(len(srcs), "sensor")
	s.Notes = []string{"Built from the sensors' stored minutes: the last 5 minutes and the last hour of each view."}
	// One query per part of the view, over all its sensors: every source,
	// or a site's sources (SITE/).
	sel := ""
	if view != GroupView {
		sel = view + "/"
	}
	newest := h.db.LastMinute(sel)
	if newest > 0 {
		h5 := analysis.New(analysis.Options{NoKMeans: true, NoModel: true})
		h1 := analysis.New(analysis.Options{})
		h.db.Minutes(sel, time.Unix((newest-59)*60, 0), func(_, minute int64, st *analysis.State) error {
			h1.Merge(st)
			if minute >= newest-4 {
				h5.Merge(st)
			}
			return nil
		})
		to := time.Unix((newest+1)*60, 0).UTC()
		s.Capture = to
		for name, a := range map[string]*analysis.Analyzer{"5m": h5, "1h": h1} {
			t := time.Now()
			r := a.Result(a.OwnSummary(), nil)
			s.Windows[name] = &watch.Window{Name: name, From: r.Overview.First, To: to, Result: r, Took: time.Since(t).Seconds()}
		}
		r := s.Windows["1h"].Result
		s.Totals.Frames, s.Totals.Bytes, s.Totals.MQTT = r.Overview.Frames, r.Overview.Bytes, r.Overview.MQTTPackets
		for k, v := range r.MQTT.MsgTypes {
			if t, err := strconv.Atoi(k); err == nil && t >= 0 && t < 16 {
				s.Totals.ByType[mqtt.Type(t).String()] = v
			}
		}
		s.Totals.Published = r.MQTT.MsgTypes["3"]
		r5 := s.Windows["5m"].Result
		s.Rates.End = to
		s.Rates.Frames = r5.Series.Values
		s.Rates.MQTT["MQTT"] = r5.Series.MQTT
	}
	since := time.Unix(newest*60, 0).Add(-24 * time.Hour)
	s.Incidents, _ = h.db.Incidents(sel, since) // the group view's has the group's own
	if sel != "" {
		group, _ := h.db.Incidents(GroupSource, since)
		s.Incidents = append(s.Incidents, group...)
	}
	s.Devices, _ = h.db.Devices(sel)
	for i := range s.Incidents {
		if src := s.Incidents[i].Source; src != "" {
			s.Incidents[i].Title = src + ": " + s.Incidents[i].Title
		}
	}
	sort.SliceStable(s.Incidents, func(i, j int) bool {
		a, b := s.Incidents[i], s.Incidents[j]
		if (a.Status == incident.Closed) != (b.Status == incident.Closed) {
			return b.Status == incident.Closed
		}
		return a.Severity.Rank() > b.Severity.Rank()
	})
	// Bounded, as watch's own page is: the most serious incidents first.
	if len(s.Incidents) > watch.MaxIncidentsShown {
		s.Incidents = s.Incidents[:watch.MaxIncidentsShown]
	}
	if len(s.Devices) > maxDevicesShown {
		s.Notes = append(s.Notes, fmt.Sprintf("%d devices; the first %d shown", len(s.Devices), maxDevicesShown))
		s.Devices = s.Devices[:maxDevicesShown]
	}
	if s.Devices == nil {
		s.Devices = []inventory.Device{}
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// Package incident turns the findings that detectors report again and
// again on a live run into incidents: one per finding ID while it goes on,
// opened when it first shows, updated while it continues (at most every
// UpdateEvery, or at once when its severity rises), closed when it has
// shown nothing new for CloseAfter. Time is the capture's, so a replay at
// any speed gives the incidents of the live run it recorded.
//
// The dashboard, the alert outputs and the history all read these events;
// a batch analysis is the same findings read once at the end.
package incident

import (
	"time"

	"github.com/iomtguard/iomtguard/internal/detect"
)

// Status of an incident, and the kind of an event.
type Status string

const (
	Open   Status = "open"
	Update Status = "update"
	Closed Status = "closed"
)

// Incident is one finding while it goes on.
type Incident struct {
	Seq       int64           `json:"incident"` // unique, increasing, kept across restarts
	ID        string          `json:"id"`       // the finding ID (attack.bruteforce, ...)
	Severity  detect.Severity `json:"severity"`
	Category  string          `json:"category"`
	Title     string          `json:"title"`
	Status    Status          `json:"status"` // open (also after updates) or closed
	FirstSeen time.Time       `json:"first_seen"`
	LastSeen  time.Time       `json:"last_seen"`
	Count     int64           `json:"count"` // the finding's largest evidence count within this incident
	Updates   int             `json:"updates"`
	Evidence  detect.Evidence `json:"evidence"`
	Controls  detect.Controls `json:"controls"`
	Defence   detect.Defence  `json:"defence"`
	Detector  string          `json:"detector"`
	// Source is the sensor (SITE/SENSOR) a hub received it from, or
	// "group" for the hub's own cross-site incidents ("" in a lone watch).
	Source string `json:"source,omitempty"`
}

// Event is an incident opening, changing or closing.
type Event struct {
	Kind     Status    `json:"event"`
	At       time.Time `json:"at"` // capture time
	Incident Incident  `json:"incident"`
}

// Options of a Tracker. Zero values give the defaults.
type Options struct {
	// CloseAfter closes an incident that showed nothing new for this long
	// (default 5 minutes of capture time).
	CloseAfter time.Duration
	// UpdateEvery bounds how often an open incident is reported again
	// (default 5 minutes); a rise in severity is reported at once.
	UpdateEvery time.Duration
}

type track struct {
	inc        Incident
	reported   time.Time // capture time of the last event sent
	dirty      bool      // changed since then
	base       int64     // the incident's count when detector counts restarted (a restore)
	detAtBase  int64     // the detector's count at that moment
	closedLast time.Time // for a closed key: the finding's Last at closing
	closedDet  int64     // and the detector's count
	closed     bool
}

// Tracker follows incidents; it is used from one goroutine.
type Tracker struct {
	opts Options
	next int64
	keys map[string]*track
}

// New returns a tracker whose incident numbers continue after last (0 for
// a new history).
func New(opts Options, last int64) *Tracker {
	if opts.CloseAfter <= 0 {
		opts.CloseAfter = 5 * time.Minute
	}
	if opts.UpdateEvery <= 0 {
		opts.UpdateEvery = 5 * time.Minute
	}
	return &Tracker{opts: opts, next: last, keys: map[string]*track{}}
}

// Restore brings back an incident read from the history after a restart:
// open ones go on (the detectors start counting again from zero), closed
// ones only keep their key from reopening on old evidence.
func (t *Tracker) Restore(inc Incident) {
	if inc.Seq > t.next {
		t.next = inc.Seq
	}
	tr := t.keys[inc.ID]
	if tr != nil && tr.inc.Seq > inc.Seq {
		return
	}
	tr = &track{inc: inc, reported: inc.LastSeen, base: inc.Count}
	if inc.Status == Closed {
		tr.closed, tr.closedLast = true, inc.LastSeen
	}
	t.keys[inc.ID] = tr
}

// mainCount is a finding's largest evidence count.
func mainCount(f *detect.Finding) int64 {
	var m int64
	for _, v := range f.Evidence.Counts {
		m = max(m, v)
	}
	return m
}

// Observe takes the findings the detectors report now (capture time now)
// and returns the events they cause, closings included.
func (t *Tracker) Observe(now time.Time, fs []detect.Finding) []Event {
	var evs []Event
	seen := map[string]bool{}
	for i := range fs {
		f := &fs[i]
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		c := mainCount(f)
		tr := t.keys[f.ID]
		switch {
		case tr == nil || tr.closed:
			if tr != nil && !f.Last.After(tr.closedLast) {
				continue // nothing new since it closed
			}
			t.next++
			first := f.First
			detBase := int64(0)
			if tr != nil {
				first, detBase = f.Last, tr.closedDet
				if c < detBase { // the detector restarted
					detBase = 0
				}
			}
			nt := &track{detAtBase: detBase}
			nt.inc = fromFinding(f, t.next, first)
			nt.inc.Count = c - detBase
			nt.reported = now
			t.keys[f.ID] = nt
			evs = append(evs, Event{Kind: Open, At: now, Incident: nt.inc})
		default:
			if !f.Last.After(tr.inc.LastSeen) && c-tr.detAtBase+tr.base == tr.inc.Count {
				continue
			}
			rise := f.Severity.Rank() > tr.inc.Severity.Rank()
			if c < tr.detAtBase {
				tr.detAtBase = 0 // the detector restarted
			}
			seq, first, updates := tr.inc.Seq, tr.inc.FirstSeen, tr.inc.Updates
			tr.inc = fromFinding(f, seq, first)
			tr.inc.Updates = updates
			tr.inc.Count = tr.base + c - tr.detAtBase
			tr.dirty = true
			if rise || now.Sub(tr.reported) >= t.opts.UpdateEvery {
				evs = append(evs, t.update(tr, now))
			}
		}
	}
	return append(evs, t.Tick(now)...)
}

func (t *Tracker) update(tr *track, now time.Time) Event {
	tr.inc.Updates++
	tr.reported, tr.dirty = now, false
	return Event{Kind: Update, At: now, Incident: tr.inc}
}

// Tick closes the incidents quiet for CloseAfter and reports updates that
// waited; call it as the capture clock advances.
func (t *Tracker) Tick(now time.Time) []Event {
	var evs []Event
	for _, tr := range t.keys {
		if tr.closed {
			continue
		}
		if now.Sub(tr.inc.LastSeen) >= t.opts.CloseAfter {
			tr.closed, tr.closedLast = true, tr.inc.LastSeen
			tr.closedDet = tr.inc.Count - tr.base + tr.detAtBase
			tr.inc.Status = Closed
			tr.reported, tr.dirty = now, false
			evs = append(evs, Event{Kind: Closed, At: now, Incident: tr.inc})
			continue
		}
		if tr.dirty && now.Sub(tr.reported) >= t.opts.UpdateEvery {
			evs = append(evs, t.update(tr, now))
		}
	}
	sortEvents(evs)
	return evs
}

// Flush reports the open incidents changed since they were last reported
// (the end of a finite run).
func (t *Tracker) Flush(now time.Time) []Event {
	var evs []Event
	for _, tr := range t.keys {
		if !tr.closed && tr.dirty {
			evs = append(evs, t.update(tr, now))
		}
	}
	sortEvents(evs)
	return evs
}

// Incidents lists every incident tracked: open ones first, newest first.
func (t *Tracker) Incidents() []Incident {
	out := make([]Incident, 0, len(t.keys))
	for _, tr := range t.keys {
		out = append(out, tr.inc)
	}
	sortIncidents(out)
	return out
}

// Last is the highest incident number given.
func (t *Tracker) Last() int64 { return t.next }

func fromFinding(f *detect.Finding, seq int64, first time.Time) Incident {
	return Incident{Seq: seq, ID: f.ID, Severity: f.Severity, Category: f.Category, Title: f.Title, Status: Open,
		FirstSeen: first, LastSeen: f.Last, Evidence: f.Evidence, Controls: f.Controls, Defence: f.Defence, Detector: f.Detector}
}

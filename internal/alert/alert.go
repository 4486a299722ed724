// Package alert sends incident events (and inventory changes) out of
// iomtguard: JSON lines to a file or stdout, syslog (RFC 5424, over UDP, or
// TCP with octet counting, RFC 6587) and a webhook (an HTTP POST of JSON,
// retried with back-off). Each output has its own bounded queue and
// goroutine: a slow or dead collector never blocks capture; what could not
// be queued or delivered is counted (Stats) and shown.
package alert

import (
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/iomtguard/iomtguard/internal/incident"
)

// Alert is one event as the outputs write it.
type Alert struct {
	Kind      string         `json:"kind"` // incident, inventory
	Event     string         `json:"status"`
	ID        string         `json:"id"`
	Incident  int64          `json:"incident,omitempty"`
	Severity  string         `json:"severity"`
	Category  string         `json:"category,omitempty"`
	Title     string         `json:"title"`
	FirstSeen time.Time      `json:"first_seen"`
	LastSeen  time.Time      `json:"last_seen"`
	Count     int64          `json:"count"`
	Evidence  any            `json:"evidence,omitempty"`
	Controls  any            `json:"controls,omitempty"`
	Defence   any            `json:"defence,omitempty"`
	Device    any            `json:"device,omitempty"`
	Source    string         `json:"source,omitempty"` // the sensor (site/name) or the watch's input
	Extra     map[string]any `json:"extra,omitempty"`
	At        time.Time      `json:"at"` // capture time of the event
}

// FromIncident makes the alert of an incident event.
func FromIncident(ev incident.Event, source string) Alert {
	in := ev.Incident
	return Alert{Kind: "incident", Event: string(ev.Kind), ID: in.ID, Incident: in.Seq, Severity: string(in.Severity), Category: in.Category,
		Title: in.Title, FirstSeen: in.FirstSeen, LastSeen: in.LastSeen, Count: in.Count, Evidence: in.Evidence, Controls: in.Controls,
		Defence: in.Defence, Source: source, At: ev.At}
}

// JSON is the alert's JSON object.
func (a Alert) JSON() []byte {
	b, _ := json.Marshal(a)
	return b
}

// Sink is one output.
type Sink interface {
	Name() string
	// Send queues the alert; it never blocks.
	Send(Alert)
	Stats() Stats
	// Close delivers what is queued (within a few seconds) and stops.
	Close() error
}

// Stats count an output's alerts.
type Stats struct {
	Sent    int64 `json:"sent"`
	Dropped int64 `json:"dropped"` // the queue was full
	Failed  int64 `json:"failed"`  // not delivered after every retry
	Queued  int64 `json:"queued"`
}

// queue is the bounded queue and counters every sink shares.
type queue struct {
	ch                    chan Alert
	sent, dropped, failed atomic.Int64
	done                  chan struct{}
}

func newQueue(n int) *queue {
	if n <= 0 {
		n = 1000
	}
	return &queue{ch: make(chan Alert, n), done: make(chan struct{})}
}

func (q *queue) send(a Alert) {
	select {
	case q.ch <- a:
	default:
		q.dropped.Add(1)
	}
}

func (q *queue) stats() Stats {
	return Stats{Sent: q.sent.Load(), Dropped: q.dropped.Load(), Failed: q.failed.Load(), Queued: int64(len(q.ch))}
}

// close ends the queue and waits (at most wait) for the goroutine.
func (q *queue) close(wait time.Duration) {
	close(q.ch)
	select {
	case <-q.done:
	case <-time.After(wait):
	}
}

// Multi sends to several outputs.
type Multi []Sink

// Send queues the alert on every output.
func (m Multi) Send(a Alert) {
	for _, s := range m {
		s.Send(a)
	}
}

// Stats by output name.
func (m Multi) Stats() map[string]Stats {
	out := map[string]Stats{}
	for _, s := range m {
		out[s.Name()] = s.Stats()
	}
	return out
}

// Close closes every output.
func (m Multi) Close() error {
	var first error
	for _, s := range m {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

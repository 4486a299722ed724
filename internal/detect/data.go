package detect

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/policy"
)

// --- posture.retained-sensitive, posture.phi-in-payload -----------------------

var clinicalDataSpec = Spec{
	Name: "clinical-data",
	IDs:  []string{"posture.retained-sensitive", "posture.phi-in-payload"},
	Rule: "Scans cleartext PUBLISH payloads for the policy's patient-identifier patterns (default: MRN, person " +
		"name, date of birth, US SSN, HL7 PID segment, FHIR Patient). Per topic the first scan_first payloads " +
		"are scanned, then one in scan_every, so the cost stays bounded on busy topics; only the first 4 KiB of a " +
		"payload are read. A retained PUBLISH (non-empty) on a clinical topic or carrying an identifier is " +
		"retained sensitive data. Payloads are never copied into findings.",
	Params: []Param{
		{"scan_first", 256, "", "payloads scanned in full per topic"},
		{"scan_every", 16, "", "then one payload in this many"},
	},
	New: newClinicalData,
}

type topicState struct {
	n        int64
	clinical bool
}

type dataHits struct {
	n        int64
	topics   map[string]bool
	clients  map[string]bool
	patterns map[string]int64
	span     span
	frames   exemplars
}

func newHits() *dataHits {
	return &dataHits{topics: map[string]bool{}, clients: map[string]bool{}, patterns: map[string]int64{}}
}

func (h *dataHits) add(m *pipeline.MQTT, topic string) {
	h.n++
	if len(h.topics) < 100 {
		h.topics[printable(topic, 96)] = true
	}
	if m.FromClient && len(h.clients) < 100 {
		h.clients[idString(m.Session.ClientID)] = true
	}
	h.span.add(m.Frame.TS)
	h.frames.add(m.Frame.Num)
}

type clinicalData struct {
	pipeline.Nop
	p                  *policy.Policy
	patterns           []policy.Pattern
	textOnly           bool // default patterns: payloads without letters or '-' cannot match
	first, every       int64
	topics             map[string]*topicState
	tab                *sessTable // each session's last topic: most publish on one
	retained, phi      *dataHits
	retainedFromBroker int64
}

func newClinicalData(e *Env) Detector {
	return &clinicalData{p: e.Policy, patterns: e.Policy.PHI(), textOnly: len(e.Policy.PHIPatterns) == 0,
		first: int64(e.P("scan_first")), every: max(1, int64(e.P("scan_every"))), topics: map[string]*topicState{}, tab: e.sessions,
		retained: newHits(), phi: newHits()}
}

func (*clinicalData) uses() events { return evMQTT }

// topic returns the state of a topic, through the session's last-topic cache.
func (d *clinicalData) topic(raw []byte) *topicState {
	st := d.tab.cur
	if st.topicState != nil && bytes.Equal(st.topic, raw) {
		return st.topicState
	}
	ts := d.topics[string(raw)]
	if ts == nil {
		topic := string(raw)
		ts = &topicState{clinical: d.p.ClinicalTopic(topic)}
		if len(d.topics) < maxKeys {
			d.topics[topic] = ts
		}
	}
	st.topic = append(st.topic[:0], raw...)
	st.topicState = ts
	return ts
}

// mayHoldText reports whether b has an ASCII letter or a '-': the default
// patterns all need one.
func mayHoldText(b []byte) bool {
	for _, c := range b {
		if c == '-' || (c|0x20 >= 'a' && c|0x20 <= 'z') {
			return true
		}
	}
	return false
}

func (d *clinicalData) OnMQTT(m *pipeline.MQTT) {
	p := m.Pkt
	if p.Type != mqtt.PUBLISH {
		return
	}
	raw := p.TopicName()
	ts := d.topic(raw)
	ts.n++
	var matched []string
	if (ts.n <= d.first || ts.n%d.every == 0) && len(p.Payload) > 0 {
		b := p.Payload
		if len(b) > 4096 {
			b = b[:4096]
		}
		if !d.textOnly || mayHoldText(b) {
			for _, pt := range d.patterns {
				if pt.Re.Match(b) {
					matched = append(matched, pt.Name)
				}
			}
		}
	}
	if len(matched) > 0 {
		d.phi.add(m, string(raw))
		for _, name := range matched {
			d.phi.patterns[name]++
		}
	}
	if p.Retain && p.PayloadLen > 0 && (ts.clinical || len(matched) > 0) {
		d.retained.add(m, string(raw))
		if !m.FromClient {
			d.retainedFromBroker++
		}
	}
}

func (d *clinicalData) Findings(Models) []Finding {
	var out []Finding
	if d.retained.n > 0 {
		ev := Evidence{Counts: map[string]int64{"retained_messages": d.retained.n}, Topics: sorted(d.retained.topics, 30),
			ClientIDs: sorted(d.retained.clients, 30), Frames: d.retained.frames}
		if d.retainedFromBroker > 0 {
			ev.Notes = append(ev.Notes, fmt.Sprintf("%d of them delivered by the broker from its store to subscribers", d.retainedFromBroker))
		}
		f := newFinding("posture.retained-sensitive", d.retained.span.first, d.retained.span.last, ev)
		f.Title = fmt.Sprintf("Patient data retained on %s", joinShort(ev.Topics, 3))
		out = append(out, f)
	}
	if d.phi.n > 0 {
		ev := Evidence{Counts: map[string]int64{"messages": d.phi.n}, Topics: sorted(d.phi.topics, 30),
			ClientIDs: sorted(d.phi.clients, 30), Frames: d.phi.frames}
		var names []string
		for n := range d.phi.patterns {
			names = append(names, n)
		}
		sort.Strings(names)
		var parts []string
		for _, n := range names {
			parts = append(parts, fmt.Sprintf("%s %d", n, d.phi.patterns[n]))
			ev.Counts["pattern_"+n] = d.phi.patterns[n]
		}
		ev.Notes = append(ev.Notes, "identifier patterns matched: "+strings.Join(parts, ", ")+"; the payloads are not shown")
		f := newFinding("posture.phi-in-payload", d.phi.span.first, d.phi.span.last, ev)
		f.Title = fmt.Sprintf("Patient identifiers in cleartext on %s", joinShort(ev.Topics, 3))
		out = append(out, f)
	}
	return out
}

// Package suggest writes a least-privilege policy from what a baseline of
// normal traffic did: the inventory (hosts and client IDs), zones by role
// and subnet, the flows allowed between them, each identity's publish and
// subscribe rights (generalised where a naming convention is clear), and
// the gateway's limits from the observed rates with stated headroom. The
// policy is YAML in the format analyze and the gateway read, with comments
// that say what each rule was learned from, for a person to review before
// it is enforced. Review replays the baseline against a policy and lists
// what it would have refused.
package suggest

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"

	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/inventory"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// maxKeys bounds every table the learner keeps (a baseline is normal
// traffic, but nothing an outsider sends may grow memory without bound).
const maxKeys = 100000

// Learner is the pipeline consumer that gathers what the policy needs
// beyond the inventory: addresses, answered TCP flows by server port, and
// per client the highest rates.
type Learner struct {
	pipeline.Nop
	Hosts   map[netip.Addr]int64 // unicast addresses, frames
	Flows   map[FlowKey]*FlowStat
	Clients map[string]*ClientStat
	// MaxPacket is the largest MQTT packet seen, whole (fixed header
	// included, as the gateway counts it).
	MaxPacket int
	// MaxTopicLen and MaxTopicLevels are the longest topic name or filter
	// seen, in bytes and in levels.
	MaxTopicLen, MaxTopicLevels int
	// SourceConnects counts CONNECTs per source address and minute.
	SourceConnects map[netip.Addr]*rateMax
	Dropped        int64 // keys not kept past maxKeys
}

// rateMax is the highest count in one time bucket.
type rateMax struct {
	bucket, n, Max int64
}

func (r *rateMax) add(bucket int64) {
	if bucket != r.bucket {
		r.bucket, r.n = bucket, 0
	}
	r.n++
	r.Max = max(r.Max, r.n)
}

// FlowKey is a TCP flow by its ends and the server's port.
type FlowKey struct {
	Client, Server netip.Addr
	Port           uint16
}

// FlowStat counts a flow's connections: those the segmentation detector
// judges, and of them those the server took (Answered).
type FlowStat struct {
	Conns    int64
	Answered int64
	Example  string // "client:port → server:port"
}

// ClientStat is one client ID's rates.
type ClientStat struct {
	Connects                  int64
	MaxConnectsPerMinute      int64
	MaxPublishesPerSecond     int64
	Publishes                 int64
	Subscriptions             map[string]bool
	connMinute, pubSecond     int64
	connInMinute, pubInSecond int64
}

// NewLearner returns an empty learner.
func NewLearner() *Learner {
	return &Learner{Hosts: map[netip.Addr]int64{}, Flows: map[FlowKey]*FlowStat{}, Clients: map[string]*ClientStat{},
		SourceConnects: map[netip.Addr]*rateMax{}}
}

func (l *Learner) host(a netip.Addr) {
	a = a.Unmap()
	if !detect.Peer(a) {
		return
	}
	if _, ok := l.Hosts[a]; !ok && len(l.Hosts) >= maxKeys {
		l.Dropped++
		return
	}
	l.Hosts[a]++
}

func (l *Learner) OnFrame(f *pipeline.Frame) {
	if f.L == nil || f.L.IPVersion == 0 {
		return
	}
	l.host(f.L.Src)
	l.host(f.L.Dst)
}

func (l *Learner) client(id string) *ClientStat {
	c := l.Clients[id]
	if c == nil {
		if len(l.Clients) >= maxKeys {
			l.Dropped++
			return nil
		}
		c = &ClientStat{Subscriptions: map[string]bool{}, connMinute: -1, pubSecond: -1}
		l.Clients[id] = c
	}
	return c
}

func (l *Learner) OnMQTT(m *pipeline.MQTT) {
	p := m.Pkt
	if whole := 1 + p.LenBytes + p.RemainingLength; whole > l.MaxPacket {
		l.MaxPacket = whole
	}
	topic := func(t []byte) {
		l.MaxTopicLen = max(l.MaxTopicLen, len(t))
		l.MaxTopicLevels = max(l.MaxTopicLevels, 1+bytes.Count(t, []byte("/")))
	}
	if p.Type == mqtt.PUBLISH {
		topic(p.TopicName())
	}
	for _, f := range p.Filters {
		topic(f.Filter)
	}
	if !m.FromClient || m.Session == nil {
		return
	}
	id := m.Session.ClientID
	if p.Type == mqtt.CONNECT {
		id = string(p.ClientID)
	}
	c := l.client(id)
	if c == nil {
		return
	}
	ts := m.Frame.TS
	switch p.Type {
	case mqtt.CONNECT:
		if m.Conn != nil {
			a := m.Conn.Src(m.Dir).Addr().Unmap()
			r := l.SourceConnects[a]
			if r == nil && len(l.SourceConnects) < maxKeys {
				r = &rateMax{bucket: -1}
				l.SourceConnects[a] = r
			}
			if r != nil {
				r.add(ts / 60e9)
			}
		}
		c.Connects++
		if min := ts / 60e9; min != c.connMinute {
			c.connMinute, c.connInMinute = min, 0
		}
		c.connInMinute++
		c.MaxConnectsPerMinute = max(c.MaxConnectsPerMinute, c.connInMinute)
	case mqtt.PUBLISH:
		c.Publishes++
		if sec := ts / 1e9; sec != c.pubSecond {
			c.pubSecond, c.pubInSecond = sec, 0
		}
		c.pubInSecond++
		c.MaxPublishesPerSecond = max(c.MaxPublishesPerSecond, c.pubInSecond)
	case mqtt.SUBSCRIBE:
		for _, f := range p.Filters {
			if len(c.Subscriptions) < 1024 {
				c.Subscriptions[string(f.Filter)] = true
			}
		}
	}
}

// Answered reports whether the server took the connection: it answered
// the SYN (a SYN-ACK) or sent data. A RST alone is a refusal, as a closed
// port gives to a scan.
func Answered(c *tcpstream.Conn) bool {
	b := c.Stat[tcpstream.FromB]
	return b.SYNs > 0 || b.Payload > 0
}

// OnFlow keeps the answered TCP connections (as the segmentation detector
// judges them).
func (l *Learner) OnFlow(f *pipeline.Flow) {
	if f.Kind != pipeline.FlowClosed {
		return
	}
	c := f.Conn
	if !detect.JudgedFlow(c) {
		return
	}
	k := FlowKey{c.A.Addr().Unmap(), c.B.Addr().Unmap(), c.B.Port()}
	s := l.Flows[k]
	if s == nil {
		if len(l.Flows) >= maxKeys {
			l.Dropped++
			return
		}
		s = &FlowStat{Example: c.A.String() + " → " + c.B.String()}
		l.Flows[k] = s
	}
	s.Conns++
	if Answered(c) {
		s.Answered++
	}
}

// The inventory's bounds for a baseline: larger than a live run's (a
// policy needs every device and topic), and what a review reports as
// incomplete when a baseline outgrows them.
const (
	BaselineDevices = 100000
	BaselineTopics  = 4096 // per device and direction
)

// Baseline is what one pass over normal traffic gave.
type Baseline struct {
	Devices []inventory.Device
	Learner *Learner
	Summary *pipeline.Summary
	// Problems say what the tables could not keep: a review of this
	// baseline is then incomplete.
	Problems []string
}

// Learn reads inputs once with an inventory and a learner, and the other
// consumers given (the detectors, to say whether the baseline held an
// attack). On an error it returns what was read with it, when anything was.
func Learn(ctx context.Context, po pipeline.Options, inputs []pipeline.Input, also ...pipeline.Consumer) (*Baseline, error) {
	inv := inventory.New(inventory.Options{MaxTopics: BaselineTopics, MaxDevices: BaselineDevices})
	l := NewLearner()
	sum, err := pipeline.New(po, append([]pipeline.Consumer{inv, l}, also...)...).Run(ctx, inputs...)
	if sum == nil {
		return nil, err
	}
	// What was read is kept with the error (a live baseline ends when its
	// context does).
	b := &Baseline{Devices: inv.Devices(), Learner: l, Summary: sum}
	if inv.Evicted > 0 || l.Dropped > 0 {
		b.Problems = append(b.Problems, fmt.Sprintf("the baseline is larger than the tables: %d devices and %d addresses, flows or clients not kept", inv.Evicted, l.Dropped))
	}
	for _, d := range b.Devices {
		if len(d.Published) >= BaselineTopics || len(d.Subscribed) >= BaselineTopics {
			b.Problems = append(b.Problems, fmt.Sprintf("%s used more than %d topics or filters: its rights are not all kept", d.Key, BaselineTopics))
		}
	}
	return b, err
}

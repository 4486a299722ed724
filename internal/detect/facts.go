package detect

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"sort"
	"time"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// Facts are what a sensor tells its hub about sessions, per interval: the
// small part of its traffic that the cross-site detectors (Group) need.
// Never a password: credentials are counted as distinct, by a keyed hash
// the sensor keeps in memory.
type Facts struct {
	From    int64        `json:"from"` // the interval's first and last event (ns)
	To      int64        `json:"to"`
	Clients []ClientFact `json:"clients,omitempty"`
	Auth    []AuthFact   `json:"auth,omitempty"`
	// Over counts client IDs or (source, user name) pairs not kept: past
	// MaxFactKeys in one interval.
	Over int64 `json:"over,omitempty"`
}

// ClientFact is one client ID's sessions in an interval.
type ClientFact struct {
	ClientID string `json:"client_id"`
	Accepted int64  `json:"accepted,omitempty"` // CONNECTs the broker accepted
	Packets  int64  `json:"packets"`            // MQTT packets the client sent
	// Subscriptions the broker granted and refused (SUBACK codes of 0x80
	// and above), and those to a wildcard filter (+ or #).
	Granted  int64    `json:"granted,omitempty"`
	Refused  int64    `json:"refused,omitempty"`
	Wildcard int64    `json:"wildcard,omitempty"`
	Sources  []string `json:"sources"` // its addresses
	Brokers  []string `json:"brokers"`
	First    int64    `json:"first"`
	Last     int64    `json:"last"`
}

// AuthFact is the CONNECTs one source refused for credentials, per user
// name, in an interval.
type AuthFact struct {
	Source   string   `json:"source"`
	User     string   `json:"user,omitempty"`
	Refused  int64    `json:"refused"`
	Distinct int64    `json:"distinct"` // distinct credentials among them
	Brokers  []string `json:"brokers"`
	First    int64    `json:"first"`
	Last     int64    `json:"last"`
}

// Check refuses facts a sensor could not have made (a hub checks what it
// receives before its detectors take it): more keys or longer strings than
// a collector keeps, spans that end before they begin, or times more than
// an hour after now (one sensor's clock must not expire every other
// sensor's facts).
func (f *Facts) Check(now time.Time) error {
	limit := now.Add(time.Hour).UnixNano()
	if len(f.Clients) > MaxFactKeys || len(f.Auth) > MaxFactKeys {
		return fmt.Errorf("facts: %d client IDs and %d refusal keys (at most %d each)", len(f.Clients), len(f.Auth), MaxFactKeys)
	}
	if f.From > f.To || f.To > limit {
		return fmt.Errorf("facts: span %d to %d", f.From, f.To)
	}
	addrs := func(v []string) bool {
		if len(v) > maxFactAddrs {
			return false
		}
		for _, a := range v {
			if len(a) > 64 {
				return false
			}
		}
		return true
	}
	for _, c := range f.Clients {
		if len(c.ClientID) > 4*maxFactID || c.First > c.Last || c.Last > limit || !addrs(c.Sources) || !addrs(c.Brokers) {
			return fmt.Errorf("facts: client %.40q: out of bounds", c.ClientID)
		}
	}
	for _, a := range f.Auth {
		if len(a.Source) > 64 || len(a.User) > 4*64 || a.First > a.Last || a.Last > limit || a.Refused < 0 || a.Distinct < 0 || !addrs(a.Brokers) {
			return fmt.Errorf("facts: refusals from %.40q: out of bounds", a.Source)
		}
	}
	return nil
}

// MaxFactKeys bounds the client IDs and the (source, user name) pairs one
// interval's Facts keep; what is past it is counted in Over.
const MaxFactKeys = 5000

// maxFactID bounds a client ID's length in the facts (MQTT allows 64 KiB).
const maxFactID = 128

// maxFactAddrs bounds the addresses kept per key.
const maxFactAddrs = 8

// FactCollector gathers a sensor's Facts from the pipeline's MQTT events.
// Take returns the interval's and starts the next.
type FactCollector struct {
	pipeline.Nop
	seed    maphash.Seed
	pending map[*pipeline.Session]pendingConnect
	clients map[string]*clientAgg
	auth    map[authFactKey]*authFactAgg
	from    int64
	to      int64
	over    int64
}

type pendingConnect struct {
	cred uint64
	user string
}

type clientAgg struct {
	f       ClientFact
	sources map[string]bool
	brokers map[string]bool
}

type authFactKey struct{ src, user string }

type authFactAgg struct {
	f       AuthFact
	creds   map[uint64]bool
	brokers map[string]bool
}

// NewFactCollector makes a collector.
func NewFactCollector() *FactCollector {
	c := &FactCollector{seed: maphash.MakeSeed(), pending: map[*pipeline.Session]pendingConnect{}}
	c.reset()
	return c
}

func (c *FactCollector) reset() {
	c.clients, c.auth, c.from, c.to, c.over = map[string]*clientAgg{}, map[authFactKey]*authFactAgg{}, 0, 0, 0
}

// OnMQTT observes one MQTT packet.
func (c *FactCollector) OnMQTT(m *pipeline.MQTT) {
	p, s := m.Pkt, m.Session
	if s == nil || p == nil {
		return
	}
	t := m.Frame.TS
	if c.from == 0 {
		c.from = t
	}
	c.to = t
	switch {
	case p.Type == mqtt.CONNECT && m.FromClient:
		var h maphash.Hash
		h.SetSeed(c.seed)
		h.Write(p.Username)
		h.WriteByte(0)
		h.Write(p.Password)
		if len(c.pending) < maxKeys {
			c.pending[s] = pendingConnect{cred: h.Sum64(), user: string(p.Username)}
		}
	case p.Type == mqtt.CONNACK && !m.FromClient && p.Has(mqtt.FieldReasonCode):
		pc, ok := c.pending[s]
		delete(c.pending, s)
		if p.ReasonCode == 0 {
			if a := c.client(s.ClientID, m); a != nil {
				a.f.Accepted++
			}
			return
		}
		if !authFailure(s.Version, p.ReasonCode) {
			return
		}
		k := authFactKey{src: clientAddr(m).String(), user: printable(pc.user, 64)}
		a := c.auth[k]
		if a == nil {
			if len(c.auth) >= MaxFactKeys {
				c.over++
				return
			}
			a = &authFactAgg{f: AuthFact{Source: k.src, User: k.user, First: t}, creds: map[uint64]bool{}, brokers: map[string]bool{}}
			c.auth[k] = a
		}
		a.f.Refused++
		a.f.Last = t
		if ok && len(a.creds) < 10000 {
			a.creds[pc.cred] = true
		}
		if len(a.brokers) < maxFactAddrs {
			a.brokers[brokerEnd(m).String()] = true
		}
	case p.Type == mqtt.SUBACK && !m.FromClient && s.ClientID != "":
		if a := c.client(s.ClientID, m); a != nil {
			for _, code := range p.ReasonCodes {
				if code >= 0x80 {
					a.f.Refused++
				} else {
					a.f.Granted++
				}
			}
		}
	case m.FromClient && s.ClientID != "":
		if a := c.client(s.ClientID, m); a != nil {
			a.f.Packets++
			if p.Type == mqtt.SUBSCRIBE {
				for _, f := range p.Filters {
					if bytes.ContainsAny(f.Filter, "+#") {
						a.f.Wildcard++
					}
				}
			}
		}
	}
}

func (c *FactCollector) client(id string, m *pipeline.MQTT) *clientAgg {
	if len(id) > maxFactID {
		id = printable(id, maxFactID) // a client ID of 64 KiB must not make a message the hub refuses
	}
	a := c.clients[id]
	t := m.Frame.TS
	if a == nil {
		if len(c.clients) >= MaxFactKeys {
			c.over++
			return nil
		}
		a = &clientAgg{f: ClientFact{ClientID: id, First: t}, sources: map[string]bool{}, brokers: map[string]bool{}}
		c.clients[id] = a
	}
	a.f.Last = t
	if len(a.sources) < maxFactAddrs {
		a.sources[clientAddr(m).String()] = true
	}
	if len(a.brokers) < maxFactAddrs {
		a.brokers[brokerEnd(m).String()] = true
	}
	return a
}

// OnFlow forgets a closed connection's CONNECT.
func (c *FactCollector) OnFlow(f *pipeline.Flow) {
	if f.Kind == pipeline.FlowClosed && f.Session != nil {
		delete(c.pending, f.Session)
	}
}

// Take returns the interval's facts (nil when there were none) and starts
// the next interval.
func (c *FactCollector) Take() *Facts {
	if len(c.clients) == 0 && len(c.auth) == 0 && c.over == 0 {
		c.from, c.to = 0, 0
		return nil
	}
	f := &Facts{From: c.from, To: c.to, Over: c.over}
	for _, a := range c.clients {
		a.f.Sources, a.f.Brokers = sorted(a.sources, maxFactAddrs), sorted(a.brokers, maxFactAddrs)
		f.Clients = append(f.Clients, a.f)
	}
	for _, a := range c.auth {
		a.f.Distinct = int64(len(a.creds))
		a.f.Brokers = sorted(a.brokers, maxFactAddrs)
		f.Auth = append(f.Auth, a.f)
	}
	sort.Slice(f.Clients, func(i, j int) bool { return f.Clients[i].ClientID < f.Clients[j].ClientID })
	sort.Slice(f.Auth, func(i, j int) bool {
		if f.Auth[i].Source != f.Auth[j].Source {
			return f.Auth[i].Source < f.Auth[j].Source
		}
		return f.Auth[i].User < f.Auth[j].User
	})
	c.reset()
	return f
}

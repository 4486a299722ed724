package suggest

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/iomtguard/iomtguard/internal/inventory"
	"github.com/iomtguard/iomtguard/internal/policy"
)

// Refusal is one thing a policy would have refused in the traffic
// reviewed, with the rule that refuses it.
type Refusal struct {
	What string `json:"what"` // host, client, flow, publish, subscribe, limit
	Who  string `json:"who"`
	Rule string `json:"rule"`
	Note string `json:"note,omitempty"`
}

func (r Refusal) String() string {
	s := fmt.Sprintf("%-9s %s: %s", r.What, inventory.Printable(r.Who), inventory.Printable(r.Rule))
	if r.Note != "" {
		s += " (" + inventory.Printable(r.Note) + ")"
	}
	return s
}

// Review lists what pol would have refused in the traffic that devs and l
// describe: addresses and client IDs outside the inventory, flows no rule
// allows, topics and filters outside each identity's rights, rates over
// the limits.
func Review(pol *policy.Policy, devs []inventory.Device, l *Learner) []Refusal {
	var out []Refusal
	if len(pol.Inventory.Hosts) > 0 {
		var addrs []netip.Addr
		for a := range l.Hosts {
			if !pol.KnownHost(a) {
				addrs = append(addrs, a)
			}
		}
		sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
		for _, a := range addrs {
			out = append(out, Refusal{What: "host", Who: a.String(), Rule: "inventory.hosts", Note: fmt.Sprintf("%d frames", l.Hosts[a])})
		}
	}
	if len(pol.Inventory.Clients) > 0 {
		for _, d := range devs {
			if d.ClientID != "" && d.Role != "broker" && !pol.KnownClient(d.ClientID) {
				out = append(out, Refusal{What: "client", Who: d.ClientID, Rule: "inventory.clients"})
			}
		}
	}
	if len(pol.Zones) > 0 {
		var keys []FlowKey
		for k := range l.Flows {
			if !pol.FlowAllowed(pol.ZoneOf(k.Client), pol.ZoneOf(k.Server), k.Port) {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool { return l.Flows[keys[i]].Example < l.Flows[keys[j]].Example })
		for _, k := range keys {
			out = append(out, Refusal{What: "flow", Who: l.Flows[k].Example,
				Rule: fmt.Sprintf("flows: %s → %s port %d", pol.ZoneOf(k.Client), pol.ZoneOf(k.Server), k.Port), Note: fmt.Sprintf("%d connections", l.Flows[k].Conns)})
		}
	}
	if !pol.HasDevices() {
		// The gateway refuses to start without a devices section; analyze
		// then judges no rights at all.
		n := 0
		for _, d := range devs {
			if d.Role != "broker" && (d.Identity != "" || d.ClientID != "") {
				n++
			}
		}
		if n > 0 {
			out = append(out, Refusal{What: "gateway", Who: fmt.Sprintf("all %d devices", n), Rule: "devices: none",
				Note: "no devices section: the gateway cannot use this policy (it denies by default)"})
		}
	} else {
		for _, d := range devs {
			id := d.Identity
			if id == "" {
				id = d.ClientID
			}
			if id == "" || d.Role == "broker" {
				continue
			}
			entries := pol.Entries(id)
			rule := "devices: no entry for this identity"
			if len(entries) > 0 {
				rule = fmt.Sprintf("devices.%s", entries[0])
			} else if d.Transport == "tls" && len(d.Published) == 0 && len(d.Subscribed) == 0 {
				out = append(out, Refusal{What: "publish", Who: id, Rule: rule, Note: "TLS hid its topics: the gateway would refuse all it does"})
				continue
			}
			for _, t := range d.Published {
				if !pol.MayPublish(id, t) {
					out = append(out, Refusal{What: "publish", Who: id, Rule: rule, Note: "topic " + t})
				}
			}
			for _, f := range d.Subscribed {
				if !pol.MaySubscribe(id, f) {
					out = append(out, Refusal{What: "subscribe", Who: id, Rule: rule, Note: "filter " + f})
				}
			}
		}
	}
	lim := pol.Limits.Effective()
	ids := make([]string, 0, len(l.Clients))
	for id := range l.Clients {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c := l.Clients[id]
		who := id
		if who == "" {
			who = "(an empty client ID)"
		}
		if c.MaxPublishesPerSecond > int64(lim.PublishesPerSecond) {
			out = append(out, Refusal{What: "limit", Who: who, Rule: "limits.publishes_per_second", Note: fmt.Sprintf("%d a second, limit %d", c.MaxPublishesPerSecond, lim.PublishesPerSecond)})
		}
		if c.MaxConnectsPerMinute > int64(lim.ConnectsPerMinutePerIdentity) {
			out = append(out, Refusal{What: "limit", Who: who, Rule: "limits.connects_per_minute_per_identity", Note: fmt.Sprintf("%d a minute, limit %d", c.MaxConnectsPerMinute, lim.ConnectsPerMinutePerIdentity)})
		}
		if n := len(c.Subscriptions); n > lim.MaxSubscriptionsPerClient {
			out = append(out, Refusal{What: "limit", Who: who, Rule: "limits.max_subscriptions_per_client", Note: fmt.Sprintf("%d filters, limit %d", n, lim.MaxSubscriptionsPerClient)})
		}
	}
	var addrs []netip.Addr
	for a, r := range l.SourceConnects {
		if r.Max > int64(lim.ConnectsPerMinutePerIP) {
			addrs = append(addrs, a)
		}
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, a := range addrs {
		out = append(out, Refusal{What: "limit", Who: a.String(), Rule: "limits.connects_per_minute_per_ip",
			Note: fmt.Sprintf("%d a minute, limit %d", l.SourceConnects[a].Max, lim.ConnectsPerMinutePerIP)})
	}
	if l.MaxTopicLen > lim.MaxTopicLength {
		out = append(out, Refusal{What: "limit", Who: "a topic", Rule: "limits.max_topic_length", Note: fmt.Sprintf("%d bytes, limit %d", l.MaxTopicLen, lim.MaxTopicLength)})
	}
	if l.MaxTopicLevels > lim.MaxTopicLevels {
		out = append(out, Refusal{What: "limit", Who: "a topic", Rule: "limits.max_topic_levels", Note: fmt.Sprintf("%d levels, limit %d", l.MaxTopicLevels, lim.MaxTopicLevels)})
	}
	if l.MaxPacket > lim.MaxPacketSize {
		out = append(out, Refusal{What: "limit", Who: "a packet", Rule: "limits.max_packet_size", Note: fmt.Sprintf("%d bytes, limit %d", l.MaxPacket, lim.MaxPacketSize)})
	}
	return out
}

package detect

import (
	"fmt"
	"sort"
	"strings"
)

// The cross-site detectors: what a hub sees and no single sensor can. They
// read the Facts every sensor sends per interval (FactCollector), never
// packets.

// GroupRegistry documents the cross-site detectors as Registry documents
// the others (iomtguard detectors lists both).
var GroupRegistry = []Spec{
	{
		Name: "cloned-identity",
		IDs:  []string{"attack.cloned-identity"},
		Rule: "A client ID sends MQTT at two sensors' brokers (two wards, two sites) in at least min_overlap of the same " +
			"minutes. A device is on one ward at a time; the same identity alive on two at once is a copied certificate, " +
			"a copied password or a cloned device. A device moved from one ward to another overlaps one minute at most.",
		Params: []Param{{"min_overlap", 2, "", "minutes in which the client ID is active at two sensors"}},
	},
	{
		Name: "distributed-bruteforce",
		IDs:  []string{"attack.distributed-bruteforce"},
		Rule: "A source address (or a user name, over all sources) has CONNECTs refused for credentials at two or more " +
			"sensors, min_failures in all within window, with at least min_distinct credentials (counted per sensor and " +
			"summed: an upper bound): a password-guessing run spread over several brokers so that each sees little " +
			"(attack.bruteforce's thresholds, applied to the group).",
		Params: []Param{
			{"min_failures", 10, "", "refused CONNECTs needed over all sensors"},
			{"window", 600, "s", "window in which they must fall"},
			{"min_distinct", 3, "", "distinct credentials (summed over sensors)"},
		},
	},
}

// GroupIDs lists the cross-site finding IDs.
func GroupIDs() []string { return []string{"attack.cloned-identity", "attack.distributed-bruteforce"} }

// Group runs the cross-site detectors over every sensor's Facts. Facts
// older than the window before the newest are forgotten; the tables are
// bounded by MaxFactKeys per sensor and interval, and overall by maxKeys.
type Group struct {
	minOverlap, minFail, minDistinct int
	window                           int64
	clients                          map[string]map[string]*presence // client ID -> sensor -> presence
	auth                             map[groupAuthKey]map[string]*groupAuth
	newest                           int64
	expired                          int64                   // newest when expire last ran
	dirty                            map[string]bool         // client IDs with new presence since cloned last ran
	clones                           map[string]*cloneResult // client IDs judged cloned, as last judged
	perSensor                        map[string]int          // keys each sensor holds
	Dropped                          int64                   // keys not kept: past the bound
}

// cloneResult is one client ID's clone evidence.
type cloneResult struct {
	overlap       int64
	notes         []string
	srcs, brokers map[string]bool
	first, last   int64
}

// presenceMinutes is how long the clone detector remembers a client ID's
// minutes at a sensor: a clone is two copies alive now, not a day apart.
const presenceMinutes = 60

// maxAuthEntries bounds the refusal entries kept per key and sensor.
const maxAuthEntries = 1000

// maxPerSensor bounds the client IDs and refusal keys one sensor adds, so
// that one sensor cannot fill the group's tables for all.
const maxPerSensor = 20000

// maxCloneSensors bounds the sensors compared per client ID (an identity
// seen at more wards than this is reported from its first ones): a client
// ID at every sensor must not cost sensors squared comparisons.
const maxCloneSensors = 16

type presence struct {
	minutes map[int64]bool
	sources map[string]bool
	brokers map[string]bool
	first   int64
	last    int64
}

type groupAuthKey struct {
	key  string
	user bool // a user name over all sources (else a source address)
}

type groupAuth struct {
	refused  []int64 // times (the last of each fact)
	counts   []int64 // refused per entry
	distinct []int64 // distinct credentials per entry
	sources  map[string]bool
	users    map[string]bool
	brokers  map[string]bool
	first    int64
	last     int64
}

// NewGroup makes the cross-site detectors with their default thresholds.
func NewGroup() *Group {
	return &Group{minOverlap: 2, minFail: 10, minDistinct: 3, window: 600e9,
		clients: map[string]map[string]*presence{}, auth: map[groupAuthKey]map[string]*groupAuth{},
		dirty: map[string]bool{}, clones: map[string]*cloneResult{}, perSensor: map[string]int{}}
}

// Add takes one interval's facts from a sensor.
func (g *Group) Add(sensor string, f *Facts) {
	if f == nil {
		return
	}
	g.newest = max(g.newest, f.To)
	for _, c := range f.Clients {
		bySensor := g.clients[c.ClientID]
		if (bySensor == nil || bySensor[sensor] == nil) && g.perSensor[sensor] >= maxPerSensor {
			g.Dropped++
			continue
		}
		if bySensor == nil {
			if len(g.clients) >= maxKeys {
				g.Dropped++
				continue
			}
			bySensor = map[string]*presence{}
			g.clients[c.ClientID] = bySensor
		}
		p := bySensor[sensor]
		if p == nil {
			p = &presence{minutes: map[int64]bool{}, sources: map[string]bool{}, brokers: map[string]bool{}, first: c.First}
			bySensor[sensor] = p
			g.perSensor[sensor]++
		}
		if c.Packets+c.Accepted > 0 {
			for m := c.First / 60e9; m <= c.Last/60e9 && len(p.minutes) < 2*presenceMinutes; m++ {
				p.minutes[m] = true
			}
			if len(bySensor) > 1 {
				g.dirty[c.ClientID] = true
			}
		}
		p.first, p.last = min(p.first, c.First), max(p.last, c.Last)
		addAll(p.sources, c.Sources, maxFactAddrs)
		addAll(p.brokers, c.Brokers, maxFactAddrs)
	}
	for _, a := range f.Auth {
		for _, k := range []groupAuthKey{{key: a.Source}, {key: a.User, user: true}} {
			if k.user && k.key == "" {
				continue
			}
			bySensor := g.auth[k]
			if bySensor == nil {
				if len(g.auth) >= maxKeys {
					g.Dropped++
					continue
				}
				bySensor = map[string]*groupAuth{}
				g.auth[k] = bySensor
			}
			ga := bySensor[sensor]
			if ga == nil {
				if g.perSensor[sensor] >= maxPerSensor {
					g.Dropped++
					continue
				}
				ga = &groupAuth{sources: map[string]bool{}, users: map[string]bool{}, brokers: map[string]bool{}, first: a.First}
				bySensor[sensor] = ga
				g.perSensor[sensor]++
			}
			if len(ga.refused) >= maxAuthEntries {
				// Bounded: the two oldest entries become one.
				ga.counts[1] += ga.counts[0]
				ga.distinct[1] = max(ga.distinct[1], ga.distinct[0])
				ga.refused, ga.counts, ga.distinct = ga.refused[1:], ga.counts[1:], ga.distinct[1:]
			}
			ga.refused = append(ga.refused, a.Last)
			ga.counts = append(ga.counts, a.Refused)
			ga.distinct = append(ga.distinct, a.Distinct)
			ga.first, ga.last = min(ga.first, a.First), max(ga.last, a.Last)
			ga.sources[a.Source] = true
			if a.User != "" {
				ga.users[a.User] = true
			}
			addAll(ga.brokers, a.Brokers, maxFactAddrs)
		}
	}
	if g.newest-g.expired >= 60e9 {
		g.expire()
		g.expired = g.newest
	}
}

func addAll(set map[string]bool, vs []string, n int) {
	for _, v := range vs {
		if len(set) >= n {
			return
		}
		set[v] = true
	}
}

// expire forgets what is older than the window before the newest fact
// (refusals) or than a day (presence, which is judged per minute).
func (g *Group) expire() {
	for k, bySensor := range g.auth {
		for s, ga := range bySensor {
			i := 0
			for i < len(ga.refused) && ga.refused[i] < g.newest-g.window {
				i++
			}
			ga.refused, ga.counts, ga.distinct = ga.refused[i:], ga.counts[i:], ga.distinct[i:]
			if len(ga.refused) == 0 {
				delete(bySensor, s)
				g.perSensor[s]--
			}
		}
		if len(bySensor) == 0 {
			delete(g.auth, k)
		}
	}
	for id, bySensor := range g.clients {
		for s, p := range bySensor {
			if p.last < g.newest-presenceMinutes*60e9 {
				delete(bySensor, s)
				g.perSensor[s]--
				continue
			}
			for m := range p.minutes {
				if m < (g.newest-presenceMinutes*60e9)/60e9 {
					delete(p.minutes, m)
					g.dirty[id] = true
				}
			}
		}
		if len(bySensor) < 2 {
			delete(g.clones, id)
		}
		if len(bySensor) == 0 {
			delete(g.clients, id)
		}
	}
}

// Newest is the time of the newest fact (ns).
func (g *Group) Newest() int64 { return g.newest }

// Findings are the cross-site findings now.
func (g *Group) Findings() []Finding {
	var out []Finding
	if f, ok := g.cloned(); ok {
		out = append(out, f)
	}
	if f, ok := g.distributed(); ok {
		out = append(out, f)
	}
	return out
}

// judgeClone compares one client ID's presence at each pair of sensors.
func (g *Group) judgeClone(id string) *cloneResult {
	bySensor := g.clients[id]
	if len(bySensor) < 2 {
		return nil
	}
	sensors := sortedKeys(bySensor)
	if len(sensors) > maxCloneSensors {
		sensors = sensors[:maxCloneSensors]
	}
	r := &cloneResult{srcs: map[string]bool{}, brokers: map[string]bool{}}
	var sp span
	for i := 0; i < len(sensors); i++ {
		for j := i + 1; j < len(sensors); j++ {
			a, b := bySensor[sensors[i]], bySensor[sensors[j]]
			small, large := a.minutes, b.minutes
			if len(small) > len(large) {
				small, large = large, small
			}
			overlap := 0
			for m := range small {
				if large[m] {
					overlap++
				}
			}
			if overlap < g.minOverlap {
				continue
			}
			r.overlap += int64(overlap)
			r.notes = append(r.notes, fmt.Sprintf("%s active at %s (from %s) and at %s (from %s) in %d of the same minutes, %s to %s",
				idString(id), sensors[i], joinShort(sortedKeys(a.sources), 3), sensors[j], joinShort(sortedKeys(b.sources), 3),
				overlap, fmtTime(max(a.first, b.first)), fmtTime(min(a.last, b.last))))
			for _, p := range []*presence{a, b} {
				for s := range p.sources {
					r.srcs[s] = true
				}
				for s := range p.brokers {
					r.brokers[s] = true
				}
			}
			sp.add(max(a.first, b.first))
			sp.add(min(a.last, b.last))
		}
	}
	if r.overlap == 0 {
		return nil
	}
	r.first, r.last = sp.first, sp.last
	return r
}

// cloned judges the client IDs seen anew since it last ran (the others'
// judgement stands) and reports every clone.
func (g *Group) cloned() (Finding, bool) {
	for id := range g.dirty {
		if r := g.judgeClone(id); r != nil {
			g.clones[id] = r
		} else {
			delete(g.clones, id)
		}
	}
	clear(g.dirty)
	if len(g.clones) == 0 {
		return Finding{}, false
	}
	ev := Evidence{Counts: map[string]int64{}}
	var sp span
	ids, srcs, brokers := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, id := range sortedKeys(g.clones) {
		r := g.clones[id]
		ids[idString(id)] = true
		ev.Counts["overlapping_minutes"] += r.overlap
		if len(ev.Notes) < 20 {
			ev.Notes = append(ev.Notes, r.notes...)
		}
		for s := range r.srcs {
			srcs[s] = true
		}
		for s := range r.brokers {
			brokers[s] = true
		}
		sp.add(r.first)
		sp.add(r.last)
	}
	ev.Counts["cloned_identities"] = int64(len(ids))
	ev.ClientIDs, ev.Sources, ev.Targets = sorted(ids, 20), sorted(srcs, 20), sorted(brokers, 10)
	f := newFinding("attack.cloned-identity", sp.first, sp.last, ev)
	f.Title = fmt.Sprintf("Cloned identity: %s active on two wards at once", joinShort(ev.ClientIDs, 3))
	f.Detector = "cloned-identity"
	return f, true
}

func (g *Group) distributed() (Finding, bool) {
	ev := Evidence{Counts: map[string]int64{}}
	var sp span
	srcs, users, brokers := map[string]bool{}, map[string]bool{}, map[string]bool{}
	keys := make([]groupAuthKey, 0, len(g.auth))
	for k := range g.auth {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].user != keys[j].user {
			return !keys[i].user
		}
		return keys[i].key < keys[j].key
	})
	found := false
	var byUser int64 // the most refused for one user name (when many sources share the work)
	for _, k := range keys {
		bySensor := g.auth[k]
		if len(bySensor) < 2 {
			continue
		}
		var total, distinct int64
		var parts []string
		var ksp span
		for _, s := range sortedKeys(bySensor) {
			ga := bySensor[s]
			var n, d int64
			for i, c := range ga.counts {
				n += c
				// Per sensor, the most distinct credentials of one interval
				// (a lower bound: the hash keys differ between intervals and
				// sensors, so one wrong password retried is not many).
				d = max(d, ga.distinct[i])
			}
			total += n
			distinct += d
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
			ksp.add(ga.first)
			ksp.add(ga.last)
		}
		if total < int64(g.minFail) || distinct < int64(g.minDistinct) {
			continue
		}
		found = true
		what := "source " + k.key
		if k.user {
			what = "user name " + k.key
			byUser = max(byUser, total)
		} else {
			ev.Counts["refused_connects"] += total
		}
		ev.Notes = append(ev.Notes, fmt.Sprintf("%s: %d refused CONNECTs over %d sensors (%s), from %s to %s", what, total, len(bySensor),
			strings.Join(parts, ", "), fmtTime(ksp.first), fmtTime(ksp.last)))
		ev.Counts["sensors"] = max(ev.Counts["sensors"], int64(len(bySensor)))
		for _, ga := range bySensor {
			for s := range ga.sources {
				srcs[s] = true
			}
			for s := range ga.users {
				users[s] = true
			}
			for s := range ga.brokers {
				brokers[s] = true
			}
		}
		sp.add(ksp.first)
		sp.add(ksp.last)
	}
	if !found {
		return Finding{}, false
	}
	if ev.Counts["refused_connects"] == 0 {
		ev.Counts["refused_connects"] = byUser
	}
	ev.Sources, ev.Usernames, ev.Targets = sorted(srcs, 20), sorted(users, 20), sorted(brokers, 10)
	f := newFinding("attack.distributed-bruteforce", sp.first, sp.last, ev)
	f.Title = fmt.Sprintf("Password guessing spread over %d wards: %d refused CONNECTs from %s", ev.Counts["sensors"], ev.Counts["refused_connects"], joinShort(ev.Sources, 3))
	f.Detector = "distributed-bruteforce"
	return f, true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

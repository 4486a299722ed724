package suggest

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/iomtguard/iomtguard/internal/inventory"
	"github.com/iomtguard/iomtguard/internal/policy"
)

// Options of a suggestion.
type Options struct {
	// Headroom multiplies the highest rate seen into a limit (default 4).
	Headroom float64
	// Inputs name the baseline (for the file's header).
	Inputs []string
	// Generated is the time written in the header (default now).
	Generated time.Time
	// Warnings go into the header (the attacks found in the baseline).
	Warnings []string
}

// Suggestion is a policy and what it was learned from.
type Suggestion struct {
	YAML   []byte
	Policy *policy.Policy
	// Devices, Zones, Flows, Entries count what the policy holds.
	Devices, Zones, Flows, Entries int
	// Unlearned are the identities whose topics the capture could not show
	// (TLS): the policy gives them no rights.
	Unlearned []string
}

// rolePriority: an address with several roles takes the first.
var rolePriority = []string{"broker", "actuator", "gateway", "sensor", "monitor", "client"}

var zoneOfRole = map[string]string{"broker": "brokers", "actuator": "actuators", "gateway": "gateways", "sensor": "sensors",
	"monitor": "monitors", "client": "clients", "": "hosts"}

// Suggest writes the policy of a baseline: devs is its inventory, l what
// the learner gathered over the same traffic.
func Suggest(devs []inventory.Device, l *Learner, o Options) (*Suggestion, error) {
	if o.Headroom <= 0 {
		o.Headroom = 4
	}
	if o.Generated.IsZero() {
		o.Generated = time.Now().UTC()
	}
	s := &Suggestion{}
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# iomtguard policy, suggested from a baseline of normal traffic by 'iomtguard policy suggest'\n")
	w("# on %s from: %s.\n", o.Generated.Format("2006-01-02 15:04 MST"), strings.Join(o.Inputs, ", "))
	w("# Least privilege: what the baseline did is allowed, nothing else. Review every rule (the comments\n")
	w("# say what each was learned from) and run 'iomtguard policy suggest ... --review' or\n")
	w("# 'iomtguard analyze --policy FILE' on more normal traffic before the gateway enforces it.\n")
	for _, warn := range o.Warnings {
		w("# WARNING: the baseline holds an attack, which this policy allows: %s\n", inventory.Printable(warn))
	}
	w("\n")

	// The role of each address.
	role := map[netip.Addr]string{}
	setRole := func(a netip.Addr, r string) {
		if cur, ok := role[a]; !ok || slices.Index(rolePriority, r) < slices.Index(rolePriority, cur) {
			role[a] = r
		}
	}
	var clients, odd []string
	seenClient := map[string]bool{}
	for _, d := range devs {
		for _, s := range d.Addrs {
			if a, err := netip.ParseAddr(s); err == nil {
				setRole(a.Unmap(), d.Role)
			}
		}
		if d.Role != "broker" {
			for _, id := range []string{d.ClientID, d.Identity} {
				if id != "" && !seenClient[id] {
					seenClient[id] = true
					if strings.ContainsAny(id, "*?{}") {
						// A glob or a placeholder would admit others: left
						// out, it stays an unknown peer (the safe side).
						odd = append(odd, id)
						continue
					}
					clients = append(clients, id)
				}
			}
		}
	}
	for a := range l.Hosts {
		if _, ok := role[a]; !ok {
			role[a] = ""
		}
	}
	sort.Strings(clients)
	s.Devices = len(devs)

	// Inventory.
	var all []netip.Addr
	for a := range role {
		all = append(all, a)
	}
	w("inventory:\n")
	w("  # %d addresses seen in the baseline (every unicast source and destination); any other is an unknown peer.\n", len(all))
	w("  hosts:\n")
	for _, p := range aggregate(all) {
		w("    - %s\n", prefixString(p))
	}
	if len(odd) > 0 {
		sort.Strings(odd)
		w("  # Left out: %d client IDs with pattern characters (* ? { }), which would admit others: %s\n", len(odd), strings.Join(quoteEach(firstN(odd, 5)), ", "))
	}
	if len(clients) > 0 {
		w("  # %d MQTT client IDs (and certificate identities) seen; any other is an unknown peer.\n", len(clients))
		w("  clients:\n")
		for _, c := range clients {
			w("    - %s\n", q(c))
		}
	}
	w("\n")

	// Zones: by role, and by subnet when a role spans several.
	type zkey struct{ role, subnet string }
	members := map[zkey][]netip.Addr{}
	for a, r := range role {
		members[zkey{r, subnetOf(a)}] = append(members[zkey{r, subnetOf(a)}], a)
	}
	subnets := map[string]int{}
	for k := range members {
		subnets[k.role]++
	}
	zoneName := map[zkey]string{}
	var zkeys []zkey
	for k := range members {
		name := zoneOfRole[k.role]
		if subnets[k.role] > 1 {
			name += "-" + strings.NewReplacer(".", "-", ":", "-", "/", "-").Replace(k.subnet)
		}
		zoneName[k] = name
		zkeys = append(zkeys, k)
	}
	sort.Slice(zkeys, func(i, j int) bool { return zoneName[zkeys[i]] < zoneName[zkeys[j]] })
	zoneOf := map[netip.Addr]string{}
	w("# Zones group the hosts by role (from what they did: brokers accept MQTT connections, sensors\n")
	w("# publish, monitors subscribe, actuators publish and take commands) and by subnet.\n")
	w("zones:\n")
	for _, k := range zkeys {
		name := zoneName[k]
		addrs := members[k]
		for _, a := range addrs {
			zoneOf[a] = name
		}
		w("  - name: %s # %s\n    hosts:\n", q(name), plural(len(addrs), "host"))
		for _, p := range aggregate(addrs) {
			w("      - %s\n", prefixString(p))
		}
	}
	s.Zones = len(zkeys)
	w("\n")

	// Flows between zones, with their ports.
	type fkey struct{ from, to string }
	ports := map[fkey]map[uint16]int64{}
	examples := map[fkey]string{}
	for k, st := range l.Flows {
		if st.Answered == 0 {
			continue // refused by the server every time (a scan's RSTs): not allowed
		}
		fk := fkey{zoneOrOther(zoneOf, k.Client), zoneOrOther(zoneOf, k.Server)}
		if ports[fk] == nil {
			ports[fk] = map[uint16]int64{}
		}
		ports[fk][k.Port] += st.Answered
		if examples[fk] == "" || st.Example < examples[fk] {
			examples[fk] = st.Example
		}
	}
	var fkeys []fkey
	for k := range ports {
		fkeys = append(fkeys, k)
	}
	sort.Slice(fkeys, func(i, j int) bool {
		return fkeys[i].from < fkeys[j].from || fkeys[i].from == fkeys[j].from && fkeys[i].to < fkeys[j].to
	})
	w("# TCP flows allowed between zones (any other is a segmentation violation), from the answered\n")
	w("# connections of the baseline.\n")
	if len(fkeys) == 0 {
		w("flows: []\n")
	} else {
		w("flows:\n")
	}
	for _, k := range fkeys {
		var ps []int
		var conns int64
		for p, n := range ports[k] {
			ps = append(ps, int(p))
			conns += n
		}
		sort.Ints(ps)
		w("  - {from: %s, to: %s, ports: %s} # %s, e.g. %s\n", q(k.from), q(k.to), intList(ps), plural(int(conns), "connection"), examples[k])
	}
	s.Flows = len(fkeys)
	w("\n")

	// Rights.
	entries, unlearned := rights(devs)
	s.Unlearned = unlearned
	w("# What each identity (the client certificate's name through the gateway, else the client ID)\n")
	w("# may publish and subscribe to; the gateway refuses the rest. {name} in an entry stands for the\n")
	w("# part of the identity it matches, where a naming convention was clear in the baseline.\n")
	if len(unlearned) > 0 {
		w("# TLS hid the topics of %d identities (%s): they get no rights here; add them by hand.\n", len(unlearned), strings.Join(safeEach(firstN(unlearned, 10)), ", "))
	}
	if len(entries) == 0 {
		w("devices: {}\n")
	} else {
		w("devices:\n")
	}
	for _, e := range entries {
		w("  # %s\n", e.comment)
		w("  %s:\n", q(e.name))
		if len(e.pub) > 0 {
			w("    publish: [%s]\n", quoteList(e.pub))
		}
		if len(e.sub) > 0 {
			w("    subscribe: [%s]\n", quoteList(e.sub))
		}
		if len(e.pub) == 0 && len(e.sub) == 0 {
			w("    publish: []\n")
		}
	}
	s.Entries = len(entries)
	w("\n")

	// Limits from the rates, with headroom.
	var maxPPS, maxCPM, maxSubs int64
	var ppsBy, cpmBy, subsBy string
	ids := make([]string, 0, len(l.Clients))
	for id := range l.Clients {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c := l.Clients[id]
		if c.MaxPublishesPerSecond > maxPPS {
			maxPPS, ppsBy = c.MaxPublishesPerSecond, id
		}
		if c.MaxConnectsPerMinute > maxCPM {
			maxCPM, cpmBy = c.MaxConnectsPerMinute, id
		}
		if n := int64(len(c.Subscriptions)); n > maxSubs {
			maxSubs, subsBy = n, id
		}
	}
	lim := func(seen int64, floor int) int { return max(floor, int(math.Ceil(float64(seen)*o.Headroom))) }
	var maxIP int64
	var ipBy string
	for a, r := range l.SourceConnects {
		if r.Max > maxIP || r.Max == maxIP && a.String() < ipBy {
			maxIP, ipBy = r.Max, a.String()
		}
	}
	if len(l.Clients) == 0 {
		// Nothing of MQTT was visible (TLS, or no MQTT): a limit learned
		// from nothing would refuse what the capture could not show.
		w("# No MQTT packet was visible in the baseline (TLS hides them): the gateway's defaults apply.\n")
		w("limits: {}\n\n")
	} else {
		d := policy.DefaultLimits
		w("# The gateway's limits: the highest rate seen, times %g (headroom), or a floor; the topic\n", o.Headroom)
		w("# limits never below the defaults.\n")
		w("limits:\n")
		w("  publishes_per_second: %d # at most %d a second seen (%s)\n", lim(maxPPS, 10), maxPPS, who(ppsBy, maxPPS))
		w("  connects_per_minute_per_identity: %d # at most %d a minute seen (%s)\n", lim(maxCPM, 4), maxCPM, who(cpmBy, maxCPM))
		w("  connects_per_minute_per_ip: %d # at most %d a minute from one address (%s)\n", lim(maxIP, 8), maxIP, who(ipBy, maxIP))
		w("  max_subscriptions_per_client: %d # at most %d filters seen (%s)\n", lim(maxSubs, 8), maxSubs, who(subsBy, maxSubs))
		w("  max_packet_size: %d # the largest MQTT packet seen: %d bytes\n", lim(int64(l.MaxPacket), 4096), l.MaxPacket)
		w("  max_topic_length: %d # the longest topic or filter seen: %d bytes\n", max(d.MaxTopicLength, 2*l.MaxTopicLen), l.MaxTopicLen)
		w("  max_topic_levels: %d # the deepest: %d levels\n", max(d.MaxTopicLevels, l.MaxTopicLevels+4), l.MaxTopicLevels)
		w("\n")
	}

	// Transport.
	var tlsN, clearN, certN, mqttN int
	for _, d := range devs {
		if d.Role == "broker" || (d.ClientID == "" && d.Identity == "") {
			continue
		}
		mqttN++
		switch d.Transport {
		case "tls":
			tlsN++
		default:
			clearN++
		}
		if d.Credential == "certificate" {
			certN++
		}
	}
	w("tls:\n")
	if mqttN > 0 && clearN == 0 {
		w("  require: true # every one of %d devices used TLS\n", mqttN)
		w("  require_client_cert: %v # %d of %d presented a certificate\n", certN == mqttN, certN, mqttN)
	} else {
		w("  require: false # %d of %d devices spoke cleartext MQTT: set true once they use TLS\n", clearN, mqttN)
	}

	s.YAML = b.Bytes()
	pol, err := policy.Parse("suggested policy", bytes.NewReader(s.YAML))
	if err != nil {
		return nil, fmt.Errorf("suggest: the policy written does not read back (a bug): %w", err)
	}
	s.Policy = pol
	return s, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "sh") {
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// who names the client (or address) a highest rate came from.
func who(id string, seen int64) string {
	switch {
	case seen == 0:
		return "none"
	case id == "":
		return "an empty client ID"
	}
	return inventory.Printable(id)
}

func zoneOrOther(z map[netip.Addr]string, a netip.Addr) string {
	if n, ok := z[a]; ok {
		return n
	}
	return policy.Other
}

// subnetOf is the /24 (IPv4) or /64 (IPv6) of a.
func subnetOf(a netip.Addr) string {
	bits := 24
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p.String()
}

func prefixString(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

// aggregate covers exactly the addresses given with the fewest prefixes:
// runs of consecutive IPv4 addresses become aligned blocks; IPv6 addresses
// stay single.
func aggregate(addrs []netip.Addr) []netip.Prefix {
	var v4 []uint32
	var out []netip.Prefix
	for _, a := range addrs {
		if a.Is4() {
			b := a.As4()
			v4 = append(v4, uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]))
		} else {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	slices.Sort(v4)
	v4 = slices.Compact(v4)
	var v4out []netip.Prefix
	for i := 0; i < len(v4); {
		j := i
		for j+1 < len(v4) && v4[j+1] == v4[j]+1 {
			j++
		}
		lo, hi := uint64(v4[i]), uint64(v4[j])
		for lo <= hi {
			size := uint64(1)
			for lo%(size*2) == 0 && lo+size*2-1 <= hi && size < 1<<32 {
				size *= 2
			}
			bits := 32 - int(math.Log2(float64(size)))
			x := uint32(lo)
			v4out = append(v4out, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}), bits))
			lo += size
		}
		i = j + 1
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return append(v4out, out...)
}

func q(s string) string { return strconv.Quote(s) }

func safeEach(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = inventory.Printable(x)
	}
	return out
}

func quoteEach(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = q(x)
	}
	return out
}

func quoteList(xs []string) string {
	qs := make([]string, len(xs))
	for i, x := range xs {
		qs[i] = q(x)
	}
	return strings.Join(qs, ", ")
}

func intList(xs []int) string {
	ss := make([]string, len(xs))
	for i, x := range xs {
		ss[i] = strconv.Itoa(x)
	}
	return "[" + strings.Join(ss, ", ") + "]"
}

func firstN(xs []string, n int) []string {
	if len(xs) > n {
		return append(xs[:n:n], fmt.Sprintf("and %d more", len(xs)-n))
	}
	return xs
}

// entry is one devices entry.
type entry struct {
	name     string
	pub, sub []string
	comment  string
}

// rights makes the devices entries: one per identity, or one per naming
// convention where at least two identities differ only in numbers that
// their topics repeat (bed1-pump publishing 1/pump and bed2-pump
// publishing 2/pump give "bed{bed}-pump": publish "{bed}/pump").
func rights(devs []inventory.Device) ([]entry, []string) {
	type ident struct {
		id       string
		exact    entry
		name     string // generalised
		pub, sub []string
		pubs     int64
	}
	var ids []ident
	var unlearned []string
	for _, d := range devs {
		if d.Role == "broker" {
			continue
		}
		id := d.Identity
		if id == "" {
			id = d.ClientID
		}
		if id == "" || strings.ContainsAny(id, "*?{}") {
			continue // an entry named so would be a pattern: no rights (refused)
		}
		d.Published, d.Subscribed = validTopics(d.Published, false), validTopics(d.Subscribed, true)
		if len(d.Published) == 0 && len(d.Subscribed) == 0 {
			if d.Transport == "tls" {
				unlearned = append(unlearned, id)
			}
			continue
		}
		name, pub, sub := generalise(id, d.Published, d.Subscribed)
		ids = append(ids, ident{id: id, name: name, pub: pub, sub: sub, pubs: d.Publishes,
			exact: entry{name: id, pub: sortedCopy(d.Published), sub: sortedCopy(d.Subscribed),
				comment: fmt.Sprintf("%s (%s, %s): %s", inventory.Printable(id), d.Kind, d.Role, plural(int(d.Publishes), "publish"))}})
	}
	// Groups of identities with one convention.
	type group struct {
		name     string
		pub, sub []string
		members  []int
	}
	groups := map[string]*group{}
	byName := map[string]int{}
	for i, x := range ids {
		key := x.name + "\x00" + strings.Join(x.pub, "\x01") + "\x00" + strings.Join(x.sub, "\x01")
		g := groups[key]
		if g == nil {
			g = &group{name: x.name, pub: x.pub, sub: x.sub}
			groups[key] = g
			byName[x.name]++
		}
		g.members = append(g.members, i)
	}
	var out []entry
	for _, g := range groups {
		if len(g.members) >= 2 && clearConvention(g.name, byName[g.name], g.members, func(k int) string { return ids[k].id }, len(ids)) {
			var names []string
			var pubs int64
			for _, k := range g.members {
				names = append(names, ids[k].id)
				pubs += ids[k].pubs
			}
			sort.Strings(names)
			out = append(out, entry{name: g.name, pub: g.pub, sub: g.sub,
				comment: fmt.Sprintf("%d identities follow this convention (%s); %s. It also admits a name of the same form the baseline did not show, with the topics of its own number: who may hold such a name is the PKI's decision",
					len(g.members), strings.Join(safeEach(firstN(names, 4)), ", "), plural(int(pubs), "publish"))})
			continue
		}
		for _, k := range g.members {
			out = append(out, ids[k].exact) // its exact topics, no placeholder
		}
	}
	// One entry per name: two devices may share an identity (a client ID
	// seen in cleartext and a certificate name through TLS; a clone).
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	merged := out[:0]
	for _, e := range out {
		if n := len(merged); n > 0 && merged[n-1].name == e.name {
			m := &merged[n-1]
			m.pub = slices.Compact(slices.Sorted(slices.Values(append(m.pub, e.pub...))))
			m.sub = slices.Compact(slices.Sorted(slices.Values(append(m.sub, e.sub...))))
			m.comment += "; " + e.comment
			continue
		}
		merged = append(merged, e)
	}
	sort.Strings(unlearned)
	return merged, unlearned
}

// clearConvention reports whether a generalised name may stand for its
// members: it keeps a literal letter (a name that is only placeholders
// would admit every identity), no other group has the same name, and no
// identity of the baseline outside the group matches it (bed3-pump
// publishing elsewhere makes "bed{bed}-pump" unclear: it would get 3/pump).
func clearConvention(name string, groupsNamed int, members []int, id func(int) string, n int) bool {
	if groupsNamed > 1 {
		return false
	}
	literal := placeholder.ReplaceAllString(name, "")
	if !strings.ContainsFunc(literal, unicode.IsLetter) {
		return false
	}
	re, err := regexp.Compile("^" + placeholder.ReplaceAllStringFunc(regexp.QuoteMeta(name), func(string) string { return "(.+?)" }) + "$")
	if err != nil {
		return false
	}
	in := map[int]bool{}
	for _, k := range members {
		in[k] = true
	}
	for k := 0; k < n; k++ {
		if !in[k] && re.MatchString(id(k)) {
			return false
		}
	}
	return true
}

// placeholder is a {name} in a generalised name (QuoteMeta escapes the
// braces: \{name\}).
var placeholder = regexp.MustCompile(`\\?\{[a-z_][a-z0-9_]*\\?\}`)

// validTopics keeps the topic names (or filters) a policy can state:
// a name with a wildcard or NUL is a protocol violation (MQTT-3.3.2-2), a
// filter must be valid, and neither may hold a '{' (a placeholder).
func validTopics(xs []string, filters bool) []string {
	var out []string
	for _, x := range xs {
		switch {
		case x == "" || strings.ContainsAny(x, "{}\x00"):
		case !filters && strings.ContainsAny(x, "+#"):
		case filters && policy.CheckFilter(x) != nil:
		default:
			out = append(out, x)
		}
	}
	return out
}

func sortedCopy(xs []string) []string {
	c := slices.Clone(xs)
	sort.Strings(c)
	return c
}

// generalise replaces the runs of digits of id that its topics repeat as
// whole levels with placeholders named after the letters before them.
func generalise(id string, pub, sub []string) (string, []string, []string) {
	type run struct {
		lo, hi int
		name   string
	}
	var runs []run
	used := map[string]int{}
	for i := 0; i < len(id); {
		if !unicode.IsDigit(rune(id[i])) {
			i++
			continue
		}
		j := i
		for j < len(id) && unicode.IsDigit(rune(id[j])) {
			j++
		}
		// The letters just before name the placeholder.
		k := i
		for k > 0 && unicode.IsLetter(rune(id[k-1])) {
			k--
		}
		name := strings.ToLower(id[k:i])
		if name == "" || name == "identity" || !isIdent(name) {
			name = "n"
		}
		used[name]++
		if used[name] > 1 {
			name += strconv.Itoa(used[name])
		}
		runs = append(runs, run{i, j, name})
		i = j
	}
	inLevels := func(v string, topics []string) bool {
		for _, t := range topics {
			if slices.Contains(strings.Split(t, "/"), v) {
				return true
			}
		}
		return false
	}
	var keep []run
	kept := map[string]bool{}
	for _, r := range runs {
		// A value that an earlier run has (bed2-spo2: "2" twice) would be
		// ambiguous in the topics: the first run takes it.
		v := id[r.lo:r.hi]
		if !kept[v] && (inLevels(v, pub) || inLevels(v, sub)) {
			keep = append(keep, r)
			kept[v] = true
		}
	}
	if len(keep) == 0 {
		return id, sortedCopy(pub), sortedCopy(sub)
	}
	var nb strings.Builder
	last := 0
	for _, r := range keep {
		nb.WriteString(id[last:r.lo])
		nb.WriteString("{" + r.name + "}")
		last = r.hi
	}
	nb.WriteString(id[last:])
	sub2 := func(topics []string) []string {
		var out []string
		for _, t := range topics {
			lv := strings.Split(t, "/")
			for i, l := range lv {
				for _, r := range keep {
					if l == id[r.lo:r.hi] {
						lv[i] = "{" + r.name + "}"
						break
					}
				}
			}
			out = append(out, strings.Join(lv, "/"))
		}
		sort.Strings(out)
		return slices.Compact(out)
	}
	return nb.String(), sub2(pub), sub2(sub)
}

func isIdent(s string) bool {
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// Package policy reads the iomtguard policy file: what a capture cannot tell
// about a site (its device inventory, network zones and the flows allowed
// between them, which topics are clinical, what a patient identifier looks
// like, who may subscribe to what) and the detectors' thresholds. The same
// file is what the gateway enforces, so that analyze audits traffic against
// the rules the gateway applies.
//
// Errors name the file and line: "site.yaml:12: zones[1].hosts[0]: not an IP
// address or prefix: 10.1.2".
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Policy is a parsed policy file. The zero value is the default policy: no
// inventory, no zones, the built-in clinical topic words and identifier
// patterns, and every threshold at its default.
type Policy struct {
	// Inventory lists the known hosts and MQTT client IDs; with it, anything
	// else is an unknown peer.
	Inventory Inventory `yaml:"inventory"`
	// Zones name groups of hosts; Flows list the allowed flows between them.
	Zones []Zone     `yaml:"zones"`
	Flows []FlowRule `yaml:"flows"`
	// ClinicalTopics are MQTT topic filters whose messages carry patient
	// data. Empty: topics with a level naming a clinical quantity (patient,
	// ecg, spo2, bp, pump, dose, glucose, vitals, ...) are clinical.
	ClinicalTopics []Filter `yaml:"clinical_topics"`
	// PHIPatterns are named RE2 expressions for patient identifiers in
	// payloads. Empty: the built-in set (MRN, person name, date of birth,
	// US SSN, HL7 PID segment, FHIR Patient resource).
	PHIPatterns []Pattern `yaml:"phi_patterns"`
	// Devices give each identity (a certificate's CN, or an MQTT client ID;
	// '*' and '?' patterns allowed) the topics it may publish and subscribe
	// to, directly or through roles. The gateway denies everything else;
	// analyze reports subscriptions outside them.
	Devices map[string]Rights `yaml:"devices"`
	Roles   map[string]Rights `yaml:"roles"`
	// SealedTopics carry only iomtguard seal envelopes: the gateway refuses
	// plaintext on them.
	SealedTopics []Filter `yaml:"sealed_topics"`
	// NoRetain lists topics on which the gateway refuses retained messages.
	NoRetain []Filter `yaml:"no_retain"`
	// Limits are the gateway's rate limits and bans.
	Limits Limits `yaml:"limits"`
	// TLS states what transport security the site requires.
	TLS TLSPolicy `yaml:"tls"`
	// Thresholds tune detectors: detector name -> parameter -> value.
	Thresholds map[string]map[string]Value `yaml:"thresholds"`

	// File is where the policy was read from ("" for the default policy).
	File string `yaml:"-"`
}

// Inventory is the site's list of known hosts and clients.
type Inventory struct {
	Hosts   []Prefix `yaml:"hosts"`   // IP addresses or prefixes
	Clients []Glob   `yaml:"clients"` // client ID patterns (* and ?)
}

// Defined reports whether the inventory lists anything.
func (i Inventory) Defined() bool { return len(i.Hosts) > 0 || len(i.Clients) > 0 }

// Zone is a named group of hosts.
type Zone struct {
	Name  string   `yaml:"name"`
	Hosts []Prefix `yaml:"hosts"`
	Line  int      `yaml:"-"`
}

// UnmarshalYAML keeps the zone's line for error messages.
func (z *Zone) UnmarshalYAML(n *yaml.Node) error {
	type plain Zone
	if err := n.Decode((*plain)(z)); err != nil {
		return err
	}
	z.Line = n.Line
	return nil
}

// FlowRule allows TCP flows from one zone to another, on the given ports
// (none: any port).
type FlowRule struct {
	From  string `yaml:"from"`
	To    string `yaml:"to"`
	Ports []int  `yaml:"ports"`
}

// Rights are the topics an identity or a role may use. "{identity}" in a
// filter stands for the identity itself.
type Rights struct {
	Publish   []Filter `yaml:"publish"`
	Subscribe []Filter `yaml:"subscribe"`
	Roles     []string `yaml:"roles"`
}

// Limits are the gateway's protections: every resource a client can make
// grow has one. Zero values take the defaults of DefaultLimits.
type Limits struct {
	ConnectsPerMinutePerIP       int   `yaml:"connects_per_minute_per_ip"`
	ConnectsPerMinutePerIdentity int   `yaml:"connects_per_minute_per_identity"`
	Ban                          Value `yaml:"ban"` // seconds
	AuthFailuresBeforeBan        int   `yaml:"auth_failures_before_ban"`
	ConnectionsPerIP             int   `yaml:"connections_per_ip"`
	MaxConnections               int   `yaml:"max_connections"` // open connections, all addresses together
	MaxSessions                  int   `yaml:"max_sessions"`    // sessions held, connected or persistent
	PublishesPerSecond           int   `yaml:"publishes_per_second"`
	BytesPerSecond               int   `yaml:"bytes_per_second"`
	MaxPacketSize                int   `yaml:"max_packet_size"`
	MaxTopicLength               int   `yaml:"max_topic_length"` // bytes of a topic name or filter
	MaxTopicLevels               int   `yaml:"max_topic_levels"`
	MaxFiltersPerSubscribe       int   `yaml:"max_filters_per_subscribe"`
	MaxSubscriptionsPerClient    int   `yaml:"max_subscriptions_per_client"`
	MaxInflight                  int   `yaml:"max_inflight"`        // QoS 1 and 2 messages held per session, each way
	MaxQueuedMessages            int   `yaml:"max_queued_messages"` // messages waiting to be written to one client
	MaxTopicAliases              int   `yaml:"max_topic_aliases"`
	MaxRetained                  int   `yaml:"max_retained"`          // retained messages held by the broker for clients (its own $SYS ones not counted)
	MaxKeepalive                 Value `yaml:"max_keepalive"`         // seconds
	MaxSessionExpiry             Value `yaml:"max_session_expiry"`    // seconds
	HandshakeTimeout             Value `yaml:"handshake_timeout"`     // seconds, TLS handshake and then CONNECT
	WriteTimeout                 Value `yaml:"write_timeout"`         // seconds one write to a client may take
	MaxHandshakes                int   `yaml:"max_handshakes"`        // TLS handshakes in progress
	HandshakesPerIP              int   `yaml:"handshakes_per_ip"`     // of them from one address
	HandshakesPerSubnet          int   `yaml:"handshakes_per_subnet"` // from one /24 (IPv4) or /48 (IPv6)
}

// DefaultLimits: EMQX's flapping rule (15 connects a minute per client, a 5
// minute ban) per identity, twice that per address (several devices behind
// one address), five failed authentications, a sensor's rate with room to
// spare, a 10 s TLS handshake, and caps on what one client can make the
// broker hold (Mosquitto's max_keepalive and max_queued_messages, EMQX's
// topic limits) sized for a ward: a nurse station subscribes to tens of
// topics, a device publishes to a few.
var DefaultLimits = Limits{ConnectsPerMinutePerIP: 30, ConnectsPerMinutePerIdentity: 15, Ban: Value{V: 300},
	AuthFailuresBeforeBan: 5, ConnectionsPerIP: 100, MaxConnections: 10000, MaxSessions: 10000,
	PublishesPerSecond: 100, BytesPerSecond: 1 << 20, MaxPacketSize: 256 << 10,
	MaxTopicLength: 512, MaxTopicLevels: 32, MaxFiltersPerSubscribe: 32, MaxSubscriptionsPerClient: 128,
	MaxInflight: 256, MaxQueuedMessages: 1000, MaxTopicAliases: 32, MaxRetained: 10000,
	MaxKeepalive: Value{V: 3600}, MaxSessionExpiry: Value{V: 3600}, HandshakeTimeout: Value{V: 10}, WriteTimeout: Value{V: 30},
	MaxHandshakes: 512, HandshakesPerIP: 32, HandshakesPerSubnet: 128}

// Effective returns the limits with defaults for what is unset.
func (l Limits) Effective() Limits {
	d := DefaultLimits
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&l.ConnectsPerMinutePerIP, d.ConnectsPerMinutePerIP)
	set(&l.ConnectsPerMinutePerIdentity, d.ConnectsPerMinutePerIdentity)
	set(&l.AuthFailuresBeforeBan, d.AuthFailuresBeforeBan)
	set(&l.ConnectionsPerIP, d.ConnectionsPerIP)
	set(&l.MaxConnections, d.MaxConnections)
	set(&l.MaxSessions, d.MaxSessions)
	set(&l.PublishesPerSecond, d.PublishesPerSecond)
	set(&l.BytesPerSecond, d.BytesPerSecond)
	set(&l.MaxPacketSize, d.MaxPacketSize)
	set(&l.MaxTopicLength, d.MaxTopicLength)
	set(&l.MaxTopicLevels, d.MaxTopicLevels)
	set(&l.MaxFiltersPerSubscribe, d.MaxFiltersPerSubscribe)
	set(&l.MaxSubscriptionsPerClient, d.MaxSubscriptionsPerClient)
	set(&l.MaxInflight, d.MaxInflight)
	set(&l.MaxQueuedMessages, d.MaxQueuedMessages)
	set(&l.MaxTopicAliases, d.MaxTopicAliases)
	set(&l.MaxRetained, d.MaxRetained)
	set(&l.MaxHandshakes, d.MaxHandshakes)
	set(&l.HandshakesPerIP, d.HandshakesPerIP)
	set(&l.HandshakesPerSubnet, d.HandshakesPerSubnet)
	for _, v := range []struct{ v, def *Value }{{&l.Ban, &d.Ban}, {&l.HandshakeTimeout, &d.HandshakeTimeout},
		{&l.WriteTimeout, &d.WriteTimeout}, {&l.MaxKeepalive, &d.MaxKeepalive}, {&l.MaxSessionExpiry, &d.MaxSessionExpiry}} {
		if v.v.V == 0 {
			*v.v = *v.def
		}
	}
	return l
}

// Seconds returns a duration value as a time.Duration.
func (v Value) Seconds() time.Duration { return time.Duration(v.V * float64(time.Second)) }

// TLSPolicy is the site's transport requirement.
type TLSPolicy struct {
	Require           bool   `yaml:"require"`             // MQTT must run over TLS
	RequireClientCert bool   `yaml:"require_client_cert"` // clients must present certificates
	MinVersion        string `yaml:"min_version"`         // "1.2" (default) or "1.3"
}

// Prefix is an IP prefix; a bare address is a /32 or /128.
type Prefix struct{ netip.Prefix }

// UnmarshalYAML parses "10.0.0.0/8" or "10.1.2.3".
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	if pf, err := netip.ParsePrefix(s); err == nil {
		p.Prefix = pf.Masked()
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return lineError(n, "not an IP address or prefix: %q", s)
	}
	p.Prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
	return nil
}

// Glob is a client ID pattern: * matches any run of characters, ? one.
type Glob string

// Match reports whether s matches the pattern.
func (g Glob) Match(s string) bool { return globMatch(string(g), s) }

// globMatch matches in O(len(p)·len(s)) at worst: on a mismatch it goes
// back only to the last '*' (client IDs in a capture are the attacker's,
// up to 64 KiB; a recursive matcher is exponential in the stars).
func globMatch(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// Filter is an MQTT topic filter, checked for the wildcard rules of
// [MQTT-4.7.1-2] and [MQTT-4.7.1-3].
type Filter string

// UnmarshalYAML checks the filter.
func (f *Filter) UnmarshalYAML(n *yaml.Node) error {
	if err := CheckFilter(n.Value); err != nil {
		return lineError(n, "%v", err)
	}
	*f = Filter(n.Value)
	return nil
}

// CheckFilter reports whether s is a valid topic filter.
func CheckFilter(s string) error {
	if s == "" {
		return errors.New("empty topic filter")
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("topic filter %q: # must be a whole last level [MQTT-4.7.1-2]", s)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("topic filter %q: + must be a whole level [MQTT-4.7.1-3]", s)
		}
	}
	return nil
}

// Match reports whether topic matches the filter, with the client's ID
// substituted for %c. Topics starting with $ match only filters that start
// with $ themselves [MQTT-4.7.2-1].
func (f Filter) Match(topic, clientID string) bool {
	return TopicMatch(strings.ReplaceAll(string(f), "%c", clientID), topic)
}

// TopicMatch reports whether an MQTT topic name matches a topic filter.
func TopicMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && !strings.HasPrefix(filter, "$") {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		tl, trest, tmore := strings.Cut(topic, "/")
		switch {
		case fl == "#":
			return true
		case fl != "+" && fl != tl:
			return false
		}
		if !fmore && !tmore {
			return true
		}
		if !fmore {
			return false
		}
		if !tmore {
			// "a/#" matches "a" [MQTT-4.7.1-2].
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}

// Covers reports whether every topic matched by filter inner is matched by
// filter outer, for filters without %c (a conservative check: it may say
// false for a subset written differently). A '+' or '#' first level never
// covers a first level starting with '$' [MQTT-4.7.2-1]: "+/vitals/#" does
// not cover "$share/vitals/#" or "$SYS/#".
func Covers(outer, inner string) bool {
	for first := true; ; first = false {
		ol, orest, omore := strings.Cut(outer, "/")
		il, irest, imore := strings.Cut(inner, "/")
		if first && strings.HasPrefix(il, "$") && (ol == "#" || ol == "+") {
			return false
		}
		switch {
		case ol == "#":
			return true
		case il == "#":
			return false
		case ol == "+":
		case ol != il:
			return false
		}
		if !omore || !imore {
			return !omore && !imore
		}
		outer, inner = orest, irest
	}
}

// SharePrefix starts a shared subscription: "$share/{group}/{filter}"
// [MQTT-4.8.2].
const SharePrefix = "$share/"

// SplitShared splits a shared subscription into its group and filter. ok is
// false for a filter that is not shared; err is set for a malformed one (no
// group, a wildcard in the group, no filter) [MQTT-4.8.2-1] [MQTT-4.8.2-2].
func SplitShared(filter string) (group, inner string, ok bool, err error) {
	if len(filter) < len(SharePrefix) || !strings.EqualFold(filter[:len(SharePrefix)], SharePrefix) {
		if strings.EqualFold(filter, "$share") {
			return "", "", true, errors.New("shared subscription without a group or filter")
		}
		return "", filter, false, nil
	}
	group, inner, found := strings.Cut(filter[len(SharePrefix):], "/")
	switch {
	case !found || inner == "":
		return group, inner, true, errors.New("shared subscription without a topic filter")
	case group == "" || strings.ContainsAny(group, "+#"):
		return group, inner, true, errors.New("shared subscription group must be a non-empty name without wildcards")
	}
	return group, inner, true, nil
}

// Pattern is a named identifier pattern.
type Pattern struct {
	Name string
	Re   *regexp.Regexp
}

// UnmarshalYAML reads one "name: expression" mapping entry.
func (p *Pattern) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return lineError(n, "a PHI pattern is one \"name: regular expression\" entry")
	}
	re, err := regexp.Compile(n.Content[1].Value)
	if err != nil {
		return lineError(n.Content[1], "pattern %s: %v", n.Content[0].Value, err)
	}
	p.Name, p.Re = n.Content[0].Value, re
	return nil
}

// Value is a threshold: a number, or a duration ("90s", "10m") kept in seconds.
type Value struct {
	V    float64
	Line int
}

// UnmarshalYAML parses a number or a Go duration.
func (v *Value) UnmarshalYAML(n *yaml.Node) error {
	v.Line = n.Line
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
		v.V = f
		return nil
	}
	if d, err := time.ParseDuration(n.Value); err == nil {
		v.V = d.Seconds()
		return nil
	}
	return lineError(n, "threshold %q: want a number or a duration such as 90s or 10m", n.Value)
}

// errLine carries the line of a semantic error up to Parse, which adds the file.
type errLine struct {
	line int
	msg  string
}

func (e *errLine) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func lineError(n *yaml.Node, format string, a ...any) error {
	return &errLine{n.Line, fmt.Sprintf(format, a...)}
}

// ErrPolicy marks every error in a policy file.
var ErrPolicy = errors.New("policy")

// Load reads a policy file.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, bytes.NewReader(b))
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// Parse reads a policy from r; name labels errors.
func Parse(name string, r io.Reader) (*Policy, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	p := &Policy{}
	if err := dec.Decode(p); err != nil && err != io.EOF {
		var el *errLine
		if errors.As(err, &el) {
			return nil, fmt.Errorf("%w: %s:%d: %s", ErrPolicy, name, el.line, el.msg)
		}
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			var msgs []string
			for _, e := range te.Errors {
				if m := yamlLine.FindStringSubmatch(e); m != nil {
					msgs = append(msgs, fmt.Sprintf("%s:%s: %s", name, m[1], strings.Replace(m[2], " in type policy.Policy", "", 1)))
				} else {
					msgs = append(msgs, name+": "+e)
				}
			}
			return nil, fmt.Errorf("%w: %s", ErrPolicy, strings.Join(msgs, "; "))
		}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("%w: %s:%s: %s", ErrPolicy, name, m[1], m[2])
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrPolicy, name, err)
	}
	p.File = name
	if err := p.check(name); err != nil {
		return nil, err
	}
	return p, nil
}

// check validates references between sections.
func (p *Policy) check(name string) error {
	zones := map[string]bool{}
	for i, z := range p.Zones {
		if z.Name == "" {
			return fmt.Errorf("%w: %s: zones[%d]: a zone needs a name", ErrPolicy, name, i)
		}
		if zones[z.Name] {
			return fmt.Errorf("%w: %s: zones[%d]: zone %q defined twice", ErrPolicy, name, i, z.Name)
		}
		zones[z.Name] = true
	}
	// A host is in one zone: overlapping zones would make the flow rules
	// that apply to it ambiguous.
	for i, z := range p.Zones {
		for _, a := range z.Hosts {
			for j := 0; j < i; j++ {
				for _, b := range p.Zones[j].Hosts {
					if a.Overlaps(b.Prefix) {
						return fmt.Errorf("%w: %s:%d: zones[%d] %s: %s overlaps %s of zone %s (line %d): a host must be in one zone (narrow one of them, or list hosts)",
							ErrPolicy, name, z.Line, i, z.Name, a.Prefix, b.Prefix, p.Zones[j].Name, p.Zones[j].Line)
					}
				}
			}
		}
	}
	for i, f := range p.Flows {
		for _, z := range []string{f.From, f.To} {
			if !zones[z] && z != "*" && z != Other {
				return fmt.Errorf("%w: %s: flows[%d]: no zone named %q (zones: %s)", ErrPolicy, name, i, z, strings.Join(p.ZoneNames(), ", "))
			}
		}
		for _, port := range f.Ports {
			if port < 1 || port > 65535 {
				return fmt.Errorf("%w: %s: flows[%d]: port %d out of range", ErrPolicy, name, i, port)
			}
		}
	}
	for dev, r := range p.Devices {
		np, err := compileName(dev)
		if err != nil {
			return fmt.Errorf("%w: %s: devices: %v", ErrPolicy, name, err)
		}
		for _, f := range append(append([]Filter(nil), r.Publish...), r.Subscribe...) {
			if err := checkPlaceholders(np, string(f)); err != nil {
				return fmt.Errorf("%w: %s: devices.%s: %v", ErrPolicy, name, dev, err)
			}
		}
		for _, role := range r.Roles {
			if _, ok := p.Roles[role]; !ok {
				return fmt.Errorf("%w: %s: devices.%s: no role named %q", ErrPolicy, name, dev, role)
			}
		}
	}
	for rn, r := range p.Roles {
		for _, role := range r.Roles {
			if _, ok := p.Roles[role]; !ok {
				return fmt.Errorf("%w: %s: roles.%s: no role named %q", ErrPolicy, name, rn, role)
			}
		}
	}
	if err := p.Limits.check(); err != nil {
		return fmt.Errorf("%w: %s: limits: %v", ErrPolicy, name, err)
	}
	if v := p.TLS.MinVersion; v != "" && v != "1.2" && v != "1.3" {
		return fmt.Errorf("%w: %s: tls.min_version: want 1.2 or 1.3, not %q", ErrPolicy, name, v)
	}
	return nil
}

// ZoneNames lists the zones in file order.
func (p *Policy) ZoneNames() []string {
	var n []string
	for _, z := range p.Zones {
		n = append(n, z.Name)
	}
	return n
}

// Other is the zone of hosts that no zone lists; flow rules may name it.
const Other = "other"

// ZoneOf returns the name of the first zone holding a, or Other.
func (p *Policy) ZoneOf(a netip.Addr) string {
	a = a.Unmap()
	for _, z := range p.Zones {
		for _, h := range z.Hosts {
			if h.Contains(a) {
				return z.Name
			}
		}
	}
	return Other
}

// FlowAllowed reports whether the policy allows a TCP flow from zone a to
// zone b on port. Flows inside one zone are allowed.
func (p *Policy) FlowAllowed(a, b string, port uint16) bool {
	if a == b {
		return true
	}
	for _, f := range p.Flows {
		if (f.From == a || f.From == "*") && (f.To == b || f.To == "*") {
			if len(f.Ports) == 0 {
				return true
			}
			for _, pt := range f.Ports {
				if pt == int(port) {
					return true
				}
			}
		}
	}
	return false
}

// KnownHost reports whether the inventory lists a.
func (p *Policy) KnownHost(a netip.Addr) bool {
	a = a.Unmap()
	for _, h := range p.Inventory.Hosts {
		if h.Contains(a) {
			return true
		}
	}
	return false
}

// KnownClient reports whether the inventory lists the client ID.
func (p *Policy) KnownClient(id string) bool {
	for _, g := range p.Inventory.Clients {
		if g.Match(id) {
			return true
		}
	}
	return false
}

// HasDevices reports whether the policy gives rights to identities.
func (p *Policy) HasDevices() bool { return len(p.Devices) > 0 }

// Rights returns what identity may do: the union of every devices entry
// matching it (exactly or by pattern, identity.go) and of their roles, with
// "{identity}" and the entry's placeholders replaced; known is false when
// no entry matches. A filter whose placeholders cannot all be filled
// safely grants nothing.
func (p *Policy) Rights(identity string) (pub, sub []string, known bool) {
	for _, name := range p.Entries(identity) {
		vals, _ := lookupName(name).match(identity)
		seen := map[string]bool{}
		var add func(r Rights)
		add = func(r Rights) {
			for _, f := range r.Publish {
				if x, ok := expand(string(f), identity, vals); ok {
					pub = append(pub, x)
				}
			}
			for _, f := range r.Subscribe {
				if x, ok := expand(string(f), identity, vals); ok {
					sub = append(sub, x)
				}
			}
			for _, role := range r.Roles {
				if !seen[role] {
					seen[role] = true
					add(p.Roles[role])
				}
			}
		}
		known = true
		add(p.Devices[name])
	}
	return pub, sub, known
}

// Entries lists the devices entries that match identity, sorted.
func (p *Policy) Entries(identity string) []string {
	var out []string
	for name := range p.Devices {
		if _, ok := lookupName(name).match(identity); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// MaySubscribe reports whether identity may subscribe to filter: a filter
// of its rights covers it (true when the policy has no devices section). A
// shared subscription is judged by the filter inside it.
func (p *Policy) MaySubscribe(identity, filter string) bool {
	if !p.HasDevices() {
		return true
	}
	_, sub, _ := p.Rights(identity)
	return SubscribeAllowed(sub, filter)
}

// SubscribeAllowed reports whether rights (filters, {identity} already
// substituted) allow a subscription to filter: a shared subscription is
// judged by the filter inside it; a filter matching every topic ("#",
// "+/#") or the broker's $SYS tree must be named in the rights itself;
// any other filter must be covered by one of them.
func SubscribeAllowed(rights []string, filter string) bool {
	_, inner, _, err := SplitShared(filter)
	if err != nil || inner == "" {
		return false
	}
	if CatchAll(inner) {
		for _, f := range rights {
			if f == inner {
				return true
			}
		}
		return false
	}
	for _, f := range rights {
		if Covers(f, inner) {
			return true
		}
	}
	return false
}

// CatchAll reports a filter that matches every topic ('#' after any number
// of '+' levels) or a wildcard over the broker's $SYS tree.
func CatchAll(f string) bool {
	if len(f) >= 4 && strings.EqualFold(f[:4], "$SYS") && strings.ContainsAny(f, "#+") {
		return true
	}
	for {
		if f == "#" {
			return true
		}
		rest, ok := strings.CutPrefix(f, "+/")
		if !ok {
			return false
		}
		f = rest
	}
}

// NamesSubscription reports whether identity's rights list filter itself
// (how '#' and '$SYS/#' must be granted).
func (p *Policy) NamesSubscription(identity, filter string) bool {
	_, sub, _ := p.Rights(identity)
	for _, f := range sub {
		if f == filter {
			return true
		}
	}
	return false
}

// MayPublish reports whether identity may publish to topic (true when the
// policy has no devices section).
func (p *Policy) MayPublish(identity, topic string) bool {
	if !p.HasDevices() {
		return true
	}
	pub, _, _ := p.Rights(identity)
	for _, f := range pub {
		if TopicMatch(f, topic) {
			return true
		}
	}
	return false
}

// Sealed reports whether topic must carry sealed envelopes.
func (p *Policy) Sealed(topic string) bool {
	for _, f := range p.SealedTopics {
		if TopicMatch(string(f), topic) {
			return true
		}
	}
	return false
}

// RetainRefused reports whether retained messages are refused on topic.
func (p *Policy) RetainRefused(topic string) bool {
	for _, f := range p.NoRetain {
		if TopicMatch(string(f), topic) {
			return true
		}
	}
	return false
}

// check validates the limits' ranges.
func (l Limits) check() error {
	for _, c := range []struct {
		name string
		v    int
		max  int
	}{
		{"connects_per_minute_per_ip", l.ConnectsPerMinutePerIP, 1 << 30},
		{"connects_per_minute_per_identity", l.ConnectsPerMinutePerIdentity, 1 << 30},
		{"auth_failures_before_ban", l.AuthFailuresBeforeBan, 1 << 20},
		{"connections_per_ip", l.ConnectionsPerIP, 1 << 24},
		{"max_connections", l.MaxConnections, 1 << 24},
		{"max_sessions", l.MaxSessions, 1 << 24},
		{"publishes_per_second", l.PublishesPerSecond, 1 << 30},
		{"bytes_per_second", l.BytesPerSecond, 1 << 40},
		{"max_packet_size", l.MaxPacketSize, 268435455}, // the largest MQTT packet [MQTT-1.5.5]
		{"max_topic_length", l.MaxTopicLength, 65535},   // [MQTT-1.5.3]
		{"max_topic_levels", l.MaxTopicLevels, 65535},
		{"max_filters_per_subscribe", l.MaxFiltersPerSubscribe, 65535},
		{"max_subscriptions_per_client", l.MaxSubscriptionsPerClient, 1 << 20},
		{"max_inflight", l.MaxInflight, 65535}, // receive maximum is two bytes [MQTT-3.1.2.11.3]
		{"max_queued_messages", l.MaxQueuedMessages, 1 << 20},
		{"max_topic_aliases", l.MaxTopicAliases, 65535},
		{"max_retained", l.MaxRetained, 1 << 24},
		{"max_handshakes", l.MaxHandshakes, 1 << 16},
		{"handshakes_per_ip", l.HandshakesPerIP, 1 << 16},
		{"handshakes_per_subnet", l.HandshakesPerSubnet, 1 << 16},
	} {
		if c.v < 0 || c.v > c.max {
			return fmt.Errorf("%s: %d is out of range (0 for the default, at most %d)", c.name, c.v, c.max)
		}
	}
	for _, c := range []struct {
		name string
		v    Value
		max  float64
	}{
		{"ban", l.Ban, 366 * 86400},
		{"max_keepalive", l.MaxKeepalive, 65535}, // keep-alive is two bytes [MQTT-3.1.2.10]
		{"max_session_expiry", l.MaxSessionExpiry, 4294967295},
		{"handshake_timeout", l.HandshakeTimeout, 600},
		{"write_timeout", l.WriteTimeout, 3600},
	} {
		if c.v.V < 0 || c.v.V > c.max || c.v.V != c.v.V {
			return fmt.Errorf("%s: %g s is out of range (0 for the default, at most %g s)", c.name, c.v.V, c.max)
		}
	}
	return nil
}

package policy

import (
	"net/netip"
	"strings"
	"testing"
)

const site = `# a two-zone ward
inventory:
  hosts: [10.5.126.0/24, 10.5.120.7]
  clients: ["bed*-*", nurse-station]
zones:
  - name: devices
    hosts: [10.5.126.96/27]
  - name: broker
    hosts: [10.5.126.84]
flows:
  - {from: devices, to: broker, ports: [1883, 8883]}
  - {from: other, to: broker, ports: [8883]}
clinical_topics: ["+/ecg", "patient/#"]
phi_patterns:
  - mrn: 'MRN\d{7}'
devices:
  nurse-station: {subscribe: ["+/patient", "+/pump"]}
  "bed1-*": {roles: [bedside]}
  admin: {subscribe: ["#", "$SYS/#"]}
roles:
  bedside: {publish: ["1/#", "{identity}/status"]}
sealed_topics: ["+/patient"]
no_retain: ["+/ecg"]
limits:
  connects_per_minute_per_ip: 60
  ban: 10m
tls:
  require: true
  require_client_cert: true
  min_version: "1.2"
thresholds:
  bruteforce:
    min_failures: 5
    window: 2m
`

func TestParse(t *testing.T) {
	p, err := Parse("site.yaml", strings.NewReader(site))
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	for _, c := range []struct {
		got, want any
		what      string
	}{
		{p.KnownHost(a("10.5.126.9")), true, "host in prefix"},
		{p.KnownHost(a("10.5.120.7")), true, "bare address"},
		{p.KnownHost(a("10.5.121.1")), false, "unlisted host"},
		{p.KnownClient("bed2-ecg"), true, "client glob"},
		{p.KnownClient("laptop"), false, "unlisted client"},
		{p.ZoneOf(a("10.5.126.110")), "devices", "zone"},
		{p.ZoneOf(a("192.168.1.1")), Other, "no zone"},
		{p.FlowAllowed("devices", "broker", 8883), true, "allowed flow"},
		{p.FlowAllowed("devices", "broker", 80), false, "port not allowed"},
		{p.FlowAllowed("broker", "devices", 1883), false, "reverse direction"},
		{p.FlowAllowed("other", "broker", 8883), true, "rule naming other"},
		{p.FlowAllowed("devices", "devices", 22), true, "inside a zone"},
		{p.ClinicalTopic("3/ecg"), true, "clinical filter"},
		{p.ClinicalTopic("3/spo2"), false, "configured filters replace the words"},
		{p.MaySubscribe("nurse-station", "3/patient"), true, "subscribe right"},
		{p.MaySubscribe("nurse-station", "#"), false, "wildcard not granted"},
		{p.MaySubscribe("stranger", "3/patient"), false, "unknown identity"},
		{p.MayPublish("bed1-ecg", "1/ecg"), true, "publish through a role"},
		{p.MayPublish("bed1-ecg", "bed1-ecg/status"), true, "{identity}"},
		{p.MayPublish("bed1-ecg", "bed1-spo2/status"), false, "another identity's topic"},
		{p.MayPublish("bed1-ecg", "2/ecg"), false, "another bed"},
		{p.NamesSubscription("admin", "$SYS/#"), true, "named $SYS"},
		{p.NamesSubscription("nurse-station", "#"), false, "not named"},
		{p.Sealed("3/patient"), true, "sealed topic"},
		{p.Sealed("3/ecg"), false, "not sealed"},
		{p.RetainRefused("3/ecg"), true, "no retain"},
		{p.Limits.Effective().ConnectsPerMinutePerIP, 60, "limit set"},
		{p.Limits.Effective().Ban.V, 600.0, "ban set"},
		{p.Limits.Effective().ConnectsPerMinutePerIdentity, 15, "limit default"},
		{p.Thresholds["bruteforce"]["window"].V, 120.0, "duration threshold"},
		{p.PHI()[0].Name, "mrn", "configured patterns"},
		{p.TLS.RequireClientCert, true, "tls"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	d := &Policy{}
	if !d.ClinicalTopic("ward3/bed1/SpO2") || !d.ClinicalTopic("1/patient") || d.ClinicalTopic("Smoke") || d.ClinicalTopic("ward3/config") {
		t.Error("default clinical words")
	}
	if len(d.PHI()) != len(DefaultPHIPatterns) {
		t.Error("default patterns")
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"zonez: []\n", "x.yaml:1: field zonez not found"},
		{"inventory:\n  hosts: [10.1.2]\n", "x.yaml:2: not an IP address or prefix: \"10.1.2\""},
		{"zones:\n  - name: a\n    hosts: [10.0.0.0/8]\nflows:\n  - {from: a, to: b}\n", "flows[0]: no zone named \"b\""},
		{"zones:\n  - name: a\n  - name: a\n", "zone \"a\" defined twice"},
		{"devices:\n  x:\n    subscribe: [\"a/#/b\"]\n", "x.yaml:3: topic filter \"a/#/b\""},
		{"devices:\n  x:\n    publish: [\"a+\"]\n", "x.yaml:3: topic filter \"a+\": + must be a whole level"},
		{"devices:\n  x: {roles: [nurse]}\n", "devices.x: no role named \"nurse\""},
		{"limits:\n  connections_per_ip: -1\n", "out of range"},
		{"limits:\n  colour: red\n", "field colour not found"},
		{"phi_patterns:\n  - bad: '(('\n", "x.yaml:2: pattern bad"},
		{"tls:\n  min_version: \"1.0\"\n", "tls.min_version"},
		{"thresholds:\n  scan:\n    window: soon\n", "x.yaml:3: threshold \"soon\""},
		{"flows:\n  - {from: a, to: b, ports: [70000]}\nzones:\n  - {name: a}\n  - {name: b}\n", "port 70000 out of range"},
		{": : :\n", "x.yaml"},
		{"zones:\n  - {name: ward, hosts: [10.5.126.0/24]}\n  - {name: broker, hosts: [10.5.126.84]}\n", "x.yaml:3: zones[1] broker: 10.5.126.84/32 overlaps 10.5.126.0/24 of zone ward (line 2)"},
	} {
		_, err := Parse("x.yaml", strings.NewReader(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.want)
		}
	}
	if _, err := Parse("empty.yaml", strings.NewReader("")); err != nil {
		t.Errorf("an empty policy: %v", err)
	}
}

func TestTopicMatch(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"#", "a/b", true}, {"#", "$SYS/x", false}, {"$SYS/#", "$SYS/x", true}, {"a/#", "a", true},
		{"a/+", "a/b", true}, {"a/+", "a/b/c", false}, {"+/+", "/x", true}, {"a/b", "a/b/", false}, {"+", "", true},
	} {
		if got := TopicMatch(c.filter, c.topic); got != c.want {
			t.Errorf("TopicMatch(%q, %q) = %v", c.filter, c.topic, got)
		}
	}
	for _, c := range []struct {
		outer, inner string
		want         bool
	}{
		{"#", "a/+/b", true}, {"a/#", "a/b/#", true}, {"a/+", "a/b", true}, {"a/+", "a/#", false},
		{"a/b", "a/+", false}, {"+/patient", "2/patient", true}, {"#", "$SYS/#", false},
	} {
		if got := Covers(c.outer, c.inner); got != c.want {
			t.Errorf("Covers(%q, %q) = %v", c.outer, c.inner, got)
		}
	}
	if !Glob("bed*-?cg").Match("bed12-ecg") || Glob("bed*").Match("xbed") {
		t.Error("glob")
	}
}

// FuzzParse: a policy file never panics the parser, and what parses can be
// queried.
func FuzzParse(f *testing.F) {
	f.Add(site)
	f.Add("zones:\n  - name: a\n")
	f.Add("thresholds:\n  x:\n    y: 1h\n")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse("fuzz.yaml", strings.NewReader(s))
		if err != nil {
			return
		}
		p.ZoneOf(netip.MustParseAddr("10.0.0.1"))
		p.FlowAllowed("a", "b", 1883)
		p.ClinicalTopic("a/b")
		p.MaySubscribe("c", "#")
		p.MayPublish("c", "t")
		p.KnownClient("c")
	})
}

// TestClinicalTopicCheap: telling a topic clinical or not costs a few
// allocations, whatever it is (each topic of a flood of made-up topics is
// asked once): building a Replacer for every level made it hundreds, and
// analyze of 1M distinct topics took 20 s instead of 2.
func TestClinicalTopicCheap(t *testing.T) {
	d := &Policy{}
	for _, c := range []struct {
		topic string
		want  bool
	}{
		{"ward/12/bed/7/Blood-Pressure", true}, {"ward/12/bed/7/SPO_2", true}, {"ward/12/bed/7/firmware", false},
		{"", false}, {"/", false}, {"a//b/heart rate/", true}, {"bed-7-ecg", false},
	} {
		if got := d.ClinicalTopic(c.topic); got != c.want {
			t.Errorf("ClinicalTopic(%q) = %v, want %v", c.topic, got, c.want)
		}
	}
	n := testing.AllocsPerRun(100, func() { d.ClinicalTopic("ward/12/bed/7/Firmware-Version/x") })
	t.Logf("%.0f allocations", n)
	if n > 12 {
		t.Errorf("%.0f allocations for a topic of 6 levels", n)
	}
}

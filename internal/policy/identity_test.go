package policy

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const ward = `
devices:
  "bed{bed}-{sensor}": {publish: ["{bed}/{sensor}"]}
  "bed{bed}-control":  {publish: ["{bed}/dose"], subscribe: ["{bed}/alarm"], roles: [bedside]}
  "env-{sensor}":      {publish: ["{sensor}"]}
  "ward?-*":           {subscribe: ["{identity}/status"]}
  nurse-station:       {subscribe: ["+/alarm", "+"]}
roles:
  bedside: {publish: ["{bed}/patient"], subscribe: ["{nothing}/x"]}
`

// TestIdentityPlaceholders: one entry states a naming convention's rights;
// a value that would add a level or a wildcard matches nothing.
func TestIdentityPlaceholders(t *testing.T) {
	p, err := Parse("ward.yaml", strings.NewReader(ward))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id       string
		pub, sub []string
		known    bool
	}{
		{"bed1-ecg", []string{"1/ecg"}, nil, true},
		{"bed12-spo2", []string{"12/spo2"}, nil, true},
		{"bed1-control", []string{"1/control", "1/dose", "1/patient"}, []string{"1/alarm"}, true}, // {nothing} grants nothing
		{"bed1-ecg-2", []string{"1/ecg-2"}, nil, true},
		{"env-Barometer", []string{"Barometer"}, nil, true},
		{"ward3-hub", nil, []string{"ward3-hub/status"}, true},
		{"bed+-ecg", nil, nil, false},   // '+' would be a wildcard
		{"bed#-ecg", nil, nil, false},   // '#'
		{"bed1/x-ecg", nil, nil, false}, // '/' would add a level
		{"bed-ecg", nil, nil, false},    // an empty value
		{"ward3-#", nil, nil, true},     // matches, but {identity} is unsafe: no rights
		{"nurse-station", nil, []string{"+", "+/alarm"}, true},
		{"intruder", nil, nil, false},
	} {
		pub, sub, known := p.Rights(c.id)
		slices.Sort(pub)
		slices.Sort(sub)
		if known != c.known || !slices.Equal(pub, c.pub) || !slices.Equal(sub, c.sub) {
			t.Errorf("%s: pub %q sub %q known %v; want %q %q %v", c.id, pub, sub, known, c.pub, c.sub, c.known)
		}
	}
	if got := p.Entries("bed1-control"); !slices.Equal(got, []string{"bed{bed}-control", "bed{bed}-{sensor}"}) {
		t.Errorf("entries %q", got)
	}
	if !p.MayPublish("bed2-pump", "2/pump") || p.MayPublish("bed2-pump", "1/pump") {
		t.Error("bed2-pump's rights")
	}
}

func TestIdentityPatternErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{`devices: {"bed{bed}-x": {publish: ["{room}/x"]}}`, "uses {room}, which the entry's name does not define"},
		{`devices: {"bed{bed": {publish: ["x"]}}`, "'{' without '}'"},
		{`devices: {"bed}x": {publish: ["x"]}}`, "'}' without '{'"},
		{`devices: {"a{b}{b}": {publish: ["x"]}}`, "{b} twice"},
		{`devices: {"a{identity}": {publish: ["x"]}}`, "not a placeholder name"},
		{`devices: {"a{1x}": {publish: ["x"]}}`, "not a placeholder name"},
	} {
		_, err := Parse("x.yaml", strings.NewReader(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.yaml, err, c.want)
		}
	}
}

// TestGlobLinear: a pattern of many stars against a 64 KiB client ID (an
// attacker's, in a capture) is answered at once; the recursive matcher
// this replaced took exponential time.
func TestGlobLinear(t *testing.T) {
	id := strings.Repeat("a", 64<<10)
	start := time.Now()
	for _, g := range []Glob{"*a*a*a*a*a*a*b", "*?*?*?*?*b", "bed*-*"} {
		if g.Match(id) {
			t.Errorf("%s matched", g)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("three patterns took %s", d)
	}
}

// FuzzGlob checks the matcher against the regexp the pattern means.
func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{{"bed*-*", "bed1-ecg"}, {"*a?b*", "xxaxb"}, {"a**b", "ab"}, {"?", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		if len(p) > 40 || len(s) > 200 {
			return
		}
		var b strings.Builder
		b.WriteString("(?s)^")
		for _, r := range p {
			switch r {
			case '*':
				b.WriteString(".*")
			case '?':
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		b.WriteString("$")
		re, err := regexp.Compile(b.String())
		if err != nil {
			return
		}
		// '?' is one byte to globMatch; keep to ASCII so both agree.
		for _, c := range p + s {
			if c > 127 {
				return
			}
		}
		if got, want := Glob(p).Match(s), re.MatchString(s); got != want {
			t.Fatalf("Glob(%q).Match(%q) = %v, regexp says %v", p, s, got, want)
		}
	})
}

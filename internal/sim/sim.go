package sim

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/iomtguard/iomtguard/internal/capture"
)

// Options describe a simulation. Zero values give the defaults.
type Options struct {
	// Scenario is icu (patients, environment and a nurse station; default),
	// icu-patient (the dataset's patientMonitoring part) or icu-environment.
	Scenario string
	Duration time.Duration // default 10 minutes
	Seed     uint64
	// Start is the capture's first timestamp (default 2026-01-05 08:00 UTC).
	Start time.Time
	// Beds is the number of beds (default 2, as the dataset's ICU).
	Beds int
	// Attacks to mount (see Attacks), from AttackStart for AttackDuration
	// (defaults: a third of the way in, for a fifth of the duration).
	Attacks        []string
	AttackStart    time.Duration
	AttackDuration time.Duration
	// Posture switches.
	Anonymous bool // devices connect without credentials
	RetainPHI bool // bed control units publish retained patient records
	// TLS: devices, control units and the nurse station use MQTT over TLS
	// 1.2 on port 8883 with certificates of the ward's CA (attackers keep
	// the cleartext port 1883 the broker still opens).
	TLS bool
	// Link is the link type: LinkSLL (default, as the dataset) or LinkEthernet.
	Link capture.LinkType
	// Ward prefixes every device's client ID ("icu" makes bed1-ecg
	// icu-bed1-ecg), so that the wards of a simulated hospital group have
	// distinct identities, as a group's PKI gives them.
	Ward string
	// Clones adds, for each client ID given, a device on this ward that
	// uses that identity (another ward's, copied: its certificate or
	// password) and publishes as an ECG does: what the hub's
	// attack.cloned-identity finds. Not in the ground truth (no single
	// ward's analysis can find it).
	Clones []string
	// Guesses stops the bruteforce attack after this many guesses (0: it
	// runs for the attack's duration): a run spread over several wards,
	// each below the single-ward threshold.
	Guesses int
}

// ErrOptions reports invalid options.
var ErrOptions = errors.New("sim: invalid options")

// world is a running simulation.
type world struct {
	truth   []DeviceTruth // the benign devices, as they were added
	e       *engine
	opts    Options
	broker  *broker
	devices []*device
	clients []*client
	pki     *wardPKI // the ward's CA with --tls
	stop    int64    // benign devices stop publishing; the capture ends with them connected, as a capture of a running ward does
}

var wardRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// MaxBeds is the largest ward the address plan holds (see bedAddr).
const MaxBeds = 1000

func (o *Options) defaults() error {
	if o.Scenario == "" {
		o.Scenario = "icu"
	}
	switch o.Scenario {
	case "icu", "icu-patient", "icu-environment":
	default:
		return fmt.Errorf("%w: scenario %q: want icu, icu-patient or icu-environment", ErrOptions, o.Scenario)
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Minute
	}
	if o.Duration < 10*time.Second {
		return fmt.Errorf("%w: duration %v: at least 10s", ErrOptions, o.Duration)
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	}
	if o.Beds <= 0 {
		o.Beds = 2
	}
	if o.Beds > MaxBeds {
		return fmt.Errorf("%w: %d beds: at most %d", ErrOptions, o.Beds, MaxBeds)
	}
	if o.AttackStart <= 0 {
		o.AttackStart = o.Duration / 3
	}
	if o.AttackDuration <= 0 {
		o.AttackDuration = o.Duration / 5
	}
	if o.AttackStart+o.AttackDuration > o.Duration {
		return fmt.Errorf("%w: the attack (%v from %v) runs past the end (%v)", ErrOptions, o.AttackDuration, o.AttackStart, o.Duration)
	}
	for _, a := range o.Attacks {
		if _, ok := AttackByName(a); !ok {
			return fmt.Errorf("%w: attack %q: want one of %s", ErrOptions, a, strings.Join(AttackNames(), ", "))
		}
	}
	if o.Link == 0 {
		o.Link = capture.LinkSLL
	}
	if o.Ward != "" && !wardRE.MatchString(o.Ward) {
		return fmt.Errorf("%w: ward %q: use letters, digits, - and _", ErrOptions, o.Ward)
	}
	if len(o.Clones) > 50 {
		return fmt.Errorf("%w: %d clones: at most 50", ErrOptions, len(o.Clones))
	}
	for _, c := range o.Clones {
		if c == "" || len(c) > 64 {
			return fmt.Errorf("%w: clone client ID %q: 1 to 64 bytes", ErrOptions, c)
		}
	}
	if o.Guesses < 0 {
		return fmt.Errorf("%w: guesses %d", ErrOptions, o.Guesses)
	}
	if o.Link != capture.LinkSLL && o.Link != capture.LinkEthernet {
		return fmt.Errorf("%w: link type %v: want sll or ethernet", ErrOptions, o.Link)
	}
	return nil
}

// Generate runs the simulation and writes its frames to w. It returns the
// ground truth.
func Generate(opts Options, w capture.Writer) (*GroundTruth, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	start := opts.Start.UnixNano()
	end := start + int64(opts.Duration)
	e := newEngine(opts.Seed, w, opts.Link, start, end)
	wd := &world{e: e, opts: opts, stop: end}
	if opts.TLS {
		p, err := newWardPKI(opts.Start)
		if err != nil {
			return nil, err
		}
		wd.pki = p
	}
	bh := e.newHost("10.5.126.84", "broker", "")
	wd.broker = newBroker(e, bh, 1883)
	wd.broker.requireAuth = !opts.Anonymous
	wd.broker.allowAnonymous = opts.Anonymous
	if opts.Scenario != "icu-environment" {
		for bed := 1; bed <= opts.Beds; bed++ {
			wd.addBed(bed)
		}
	}
	if opts.Scenario != "icu-patient" {
		wd.addEnvironment()
	}
	if opts.Scenario == "icu" {
		wd.addNurseStation()
	}
	for i, id := range opts.Clones {
		wd.addClone(i, id)
	}
	truth := &GroundTruth{Scenario: opts.Scenario, Seed: opts.Seed, Start: opts.Start, Duration: opts.Duration, Devices: wd.truth}
	var runs []*attackRun
	for _, name := range opts.Attacks {
		a, _ := AttackByName(name)
		r := &attackRun{start: start + int64(opts.AttackStart), end: start + int64(opts.AttackStart+opts.AttackDuration),
			sources: map[string]bool{}, tag: frameTag{attack: name, class: "Attack"}}
		a.run(wd, r)
		runs = append(runs, r)
	}
	e.run(end)
	if e.err != nil {
		return nil, e.err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	for i, name := range opts.Attacks {
		a, _ := AttackByName(name)
		r := runs[i]
		var srcs []string
		for s := range r.sources {
			srcs = append(srcs, s)
		}
		sort.Strings(srcs)
		truth.Attacks = append(truth.Attacks, AttackTruth{Name: name, Finding: a.Finding, About: a.About,
			Start: time.Unix(0, r.start).UTC(), End: time.Unix(0, r.end).UTC(), Sources: srcs, ClientIDs: r.clientIDs})
	}
	truth.Frames = e.frames
	truth.tags = e.written
	truth.Anonymous, truth.RetainPHI, truth.TLS = opts.Anonymous, opts.RetainPHI, opts.TLS
	return truth, nil
}

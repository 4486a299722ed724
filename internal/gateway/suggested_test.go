package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/mosquittotest"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/sim"
	"github.com/iomtguard/iomtguard/internal/source"
	"github.com/iomtguard/iomtguard/internal/suggest"
)

// TestSuggestedPolicyEnforced: the policy 'policy suggest' writes from a
// capture of the ward is what the gateway enforces. The baseline is the
// simulated ward live through Mosquitto in cleartext, captured on lo (as a
// hospital would capture a normal day before it deploys the gateway); then
// the same ward, live through the gateway with TLS and a certificate per
// device, connects and publishes without one refusal, and a device that
// publishes outside what it did in the baseline is refused, the audit log
// naming the learned rule.
func TestSuggestedPolicyEnforced(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("capturing the baseline on lo needs root (CI runs as root)")
	}
	b := mosquittotest.Start(t, "listener {{PORT}} 127.0.0.1\nallow_anonymous true\n")
	f, err := source.ParseFilter(fmt.Sprintf("tcp port %d", b.Port))
	if err != nil {
		t.Fatal(err)
	}
	src, err := source.Interface("lo", source.InterfaceOptions{RingMB: 16}, source.Options{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type learned struct {
		b   *suggest.Baseline
		err error
	}
	done := make(chan learned, 1)
	go func() {
		b, err := suggest.Learn(ctx, pipeline.Options{}, []pipeline.Input{src})
		done <- learned{b, err}
	}()
	time.Sleep(300 * time.Millisecond)
	base, err := sim.Live(context.Background(), sim.LiveOptions{Broker: b.Addr(), Duration: 6 * time.Second, Beds: 2})
	if err != nil {
		t.Fatalf("baseline through Mosquitto: %v\n%s", err, b.Log())
	}
	time.Sleep(time.Second)
	cancel()
	lb := <-done
	if lb.err != nil && lb.err != context.Canceled {
		t.Fatal(lb.err)
	}
	devs := lb.b.Devices
	s, err := suggest.Suggest(devs, lb.b.Learner, suggest.Options{Inputs: []string{"lo"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("baseline: %d published through Mosquitto; the policy: %d devices, %d entries", base.Published, s.Devices, s.Entries)
	var ids []string
	for _, d := range devs {
		if d.ClientID != "" && !slices.Contains([]string{"bed1-ecg", "bed1-control", "nurse-station"}, d.ClientID) {
			ids = append(ids, d.ClientID) // start issues those three itself
		}
	}
	tg := startTB(t, string(s.YAML), ids, 0)

	st, err := sim.Live(context.Background(), sim.LiveOptions{Broker: tg.g.Addr(), Duration: 6 * time.Second, Beds: 2,
		TLS: tg.tlsConfig(t, ""),
		ClientCert: func(id string) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(filepath.Join(tg.dir, id+".crt"), filepath.Join(tg.dir, id+".key"))
			return &c, err
		}})
	if err != nil {
		t.Fatalf("%v\n%s", err, tg.audit.raw())
	}
	for _, r := range tg.audit.records(t) {
		if r.Verdict == "deny" {
			t.Errorf("refused in the live ward: %+v", r)
		}
	}
	t.Logf("live through the gateway: %d clients, %d connected, %d published, %d received by the nurse station", st.Clients, st.Connected, st.Published, st.Received)
	if st.Connected != st.Clients || st.Published == 0 || st.PublishErrors != 0 || st.Received < st.Published*9/10 {
		t.Fatalf("the ward through the gateway: %+v", st)
	}

	// The policy suggested from an offline capture of the ward (the
	// simulator's ICU, 10 minutes) loaded by a second gateway: the live
	// ward's devices connect and publish without one refusal; the live
	// nurse station, which follows every device topic where the captured
	// one followed +/alarm, +/pump and +/patient, is refused exactly the
	// subscriptions it never made in that baseline.
	t.Run("offline baseline", func(t *testing.T) {
		var buf bytes.Buffer
		w, err := capture.NewPcapngWriter(&buf, capture.LinkSLL, "sim")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sim.Generate(sim.Options{Beds: 2, Duration: 10 * time.Minute, Seed: 1, Link: capture.LinkSLL}, w); err != nil {
			t.Fatal(err)
		}
		in, err := pipeline.NewInput("offline", &buf)
		if err != nil {
			t.Fatal(err)
		}
		ob, err := suggest.Learn(context.Background(), pipeline.Options{}, []pipeline.Input{in})
		if err != nil {
			t.Fatal(err)
		}
		off, err := suggest.Suggest(ob.Devices, ob.Learner, suggest.Options{Inputs: []string{"offline"}})
		if err != nil {
			t.Fatal(err)
		}
		// On loopback the whole ward connects from one address, which the
		// captured ward (an address per device) never did: its learned
		// per-address connect limit is taken out for this run.
		yaml := regexp.MustCompile(`(?m)^  connects_per_minute_per_ip: .*\n`).ReplaceAllString(string(off.YAML), "")
		tg2 := startTB(t, yaml, ids, 0)
		st, err := sim.Live(context.Background(), sim.LiveOptions{Broker: tg2.g.Addr(), Duration: 4 * time.Second, Beds: 2,
			TLS: tg2.tlsConfig(t, ""),
			ClientCert: func(id string) (*tls.Certificate, error) {
				c, err := tls.LoadX509KeyPair(filepath.Join(tg2.dir, id+".crt"), filepath.Join(tg2.dir, id+".key"))
				return &c, err
			}})
		if err != nil {
			t.Fatal(err)
		}
		refusedSubs := 0
		for _, r := range tg2.audit.records(t) {
			if r.Verdict != "deny" {
				continue
			}
			if r.Action != "subscribe" || r.Identity != "nurse-station" || strings.HasPrefix(r.Topic, "+/") {
				t.Errorf("refused: %+v", r)
			}
			refusedSubs++
		}
		t.Logf("offline-learned policy: %d connected of %d, %d published, %d publish errors; the nurse station's %d per-device subscriptions refused", st.Connected, st.Clients, st.Published, st.PublishErrors, refusedSubs)
		if st.Connected != st.Clients || st.Published == 0 || st.PublishErrors != 0 || refusedSubs == 0 {
			t.Fatalf("%+v", st)
		}
	})

	// bed1-ecg publishes another bed's topic: refused, with the rule.
	out, _ := tg.mosq(t, "mosquitto_pub", "bed1-ecg", "-i", "bed1-ecg", "-t", "2/ecg", "-m", "80", "-q", "1")
	rec := tg.audit.await(t, "publish", "deny", "outside the identity's publish rights")
	if rec == nil || rec.Topic != "2/ecg" || !strings.Contains(rec.Rule, "bed{bed}-ecg") {
		t.Fatalf("bed1-ecg publishing 2/ecg: %+v (mosquitto_pub: %s)\n%s", rec, out, tg.audit.raw())
	}
	t.Logf("refused: %s %s: %s (rule %s)", rec.Identity, rec.Topic, rec.Reason, rec.Rule)
}

package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/gateway"
	"github.com/iomtguard/iomtguard/internal/mqtt"
)

// TestUnderAttack runs each attack of issue N for a while against a gateway
// with the default limits and audit bounds, while a device already
// connected publishes a reading every 100 ms (QoS 1) to a nurse station,
// and measures: the process's resident memory, how fast the audit log
// grows, and what the canary delivered. Goals: RSS under 300 MB, the audit
// log under 5 MB a minute, the canary unaffected.
//
//	IOMTGUARD_ATTACK_SECONDS=8 go test ./internal/gateway -run UnderAttack -v
func TestUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("attack harness")
	}
	secs := 4.0
	if s, err := strconv.ParseFloat(os.Getenv("IOMTGUARD_ATTACK_SECONDS"), 64); err == nil && s > 0 {
		secs = s
	}
	dur := time.Duration(secs * float64(time.Second))
	tg := startOpts(t, `devices:
  bed1-ecg:      {publish: ["icu/bed1/ecg"]}
  nurse-station: {subscribe: ["icu/+/ecg"]}
  pharmacy:      {publish: ["pharmacy/orders"], subscribe: ["pharmacy/orders"]}
  monitor:       {subscribe: ["+/vitals/#"]}
  "flood-*":     {publish: ["icu/{identity}/ecg"], subscribe: ["icu/+/ecg"]}
`, nil, []string{"pharmacy", "monitor", "flood-2", "flood-3", "flood-4", "flood-5", "flood-6", "flood-7", "flood-8"}, 0, gateway.AuditOptions{})

	// The canary: a device and the nurse station, connected before the attacks.
	sub := dialRaw(t, tg, "nurse-station")
	sub.connectOK(mqtt.V311, "nurse-station", nil)
	sub.subscribe(1, "icu/bed1/ecg")
	var got atomic.Int64
	go func() {
		for {
			p, err := sub.recv(time.Hour)
			if err != nil {
				return
			}
			if p.Type == mqtt.PUBLISH && string(p.Topic) == "icu/bed1/ecg" {
				got.Add(1)
				if p.QoS > 0 {
					sub.send(&mqtt.Packet{Type: mqtt.PUBACK, PacketID: p.PacketID})
				}
			}
		}
	}()
	dev := dialRaw(t, tg, "bed1-ecg")
	dev.connectOK(mqtt.V311, "bed1-ecg", nil)
	var sent, acked atomic.Int64
	var paused atomic.Bool // between attacks, while the last readings are counted
	canaryStop := make(chan struct{})
	go func() {
		for {
			p, err := dev.recv(time.Hour)
			if err != nil {
				return
			}
			if p.Type == mqtt.PUBACK {
				acked.Add(1)
			}
		}
	}()
	go func() {
		for k := 1; ; k++ {
			select {
			case <-canaryStop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if paused.Load() {
				continue
			}
			dev.publish("icu/bed1/ecg", 1, false, []byte("72"), uint16(k%60000+1))
			sent.Add(1)
		}
	}()
	defer close(canaryStop)

	from := func(n int) *net.Dialer {
		return &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 5, byte(n))}}
	}
	// attacker connects as name from its own address and returns a raw client.
	attacker := func(n int, name string, v mqtt.Version) (*raw, error) {
		c, err := tls.DialWithDialer(from(n), "tcp", tg.g.Addr(), tg.tlsConfig(t, name))
		if err != nil {
			return nil, err
		}
		r := &raw{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10), v: v}
		r.send(&mqtt.Packet{Type: mqtt.CONNECT, Version: v, ClientID: []byte(name), ConnectFlags: 2, KeepAlive: 30})
		if p, err := r.recv(5 * time.Second); err != nil || p.Type != mqtt.CONNACK || p.ReasonCode != 0 {
			c.Close()
			return nil, fmt.Errorf("attacker %s refused", name)
		}
		go func() { // drain
			for {
				if _, err := r.recv(time.Hour); err != nil {
					return
				}
			}
		}()
		return r, nil
	}
	// loop runs fn in n goroutines until the attack's time is up.
	loop := func(n int, fn func(i int, stop <-chan struct{})) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn(i, stop)
			}()
		}
		time.Sleep(dur)
		close(stop)
		wg.Wait()
	}
	big := strings.Repeat("x", 60000)
	attacks := []struct {
		name string
		run  func()
	}{
		{"publish flood over the rate (QoS 0 and 1, 4 clients)", func() {
			loop(4, func(i int, stop <-chan struct{}) {
				name := fmt.Sprintf("flood-%d", i+2)
				r, err := attacker(10+i, name, mqtt.V5)
				if err != nil {
					return
				}
				defer r.c.Close()
				buf := mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBLISH, Version: mqtt.V5, Topic: []byte("icu/" + name + "/ecg"), Payload: []byte("1"), QoS: byte(i % 2), PacketID: uint16(i % 2)})
				batch := bytes.Repeat(buf, 256)
				for {
					select {
					case <-stop:
						return
					default:
					}
					r.c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := r.c.Write(batch); err != nil {
						return
					}
				}
			})
		}},
		{"publishes with 60,000-byte topic names", func() {
			loop(2, func(i int, stop <-chan struct{}) {
				r, err := attacker(20+i, fmt.Sprintf("flood-%d", i+6), mqtt.V5)
				if err != nil {
					return
				}
				defer r.c.Close()
				buf := mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBLISH, Version: mqtt.V5, Topic: []byte(big), Payload: []byte("1")})
				for {
					select {
					case <-stop:
						return
					default:
					}
					r.c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := r.c.Write(buf); err != nil {
						return
					}
				}
			})
		}},
		{"SUBSCRIBEs of 15,000 denied filters", func() {
			loop(1, func(i int, stop <-chan struct{}) {
				r, err := attacker(30, "pharmacy", mqtt.V5)
				if err != nil {
					return
				}
				defer r.c.Close()
				p := &mqtt.Packet{Type: mqtt.SUBSCRIBE, Version: mqtt.V5, PacketID: 1}
				for k := 0; k < 15000; k++ {
					p.Filters = append(p.Filters, mqtt.Subscription{Filter: []byte("icu/" + itoa(k) + "/patient")})
				}
				buf := mqtt.Append(nil, p)
				for {
					select {
					case <-stop:
						return
					default:
					}
					r.c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := r.c.Write(buf); err != nil {
						return
					}
				}
			})
		}},
		{"connects from a banned address", func() {
			tg.g.Ban("ip:127.0.5.40", "test", time.Hour)
			loop(8, func(i int, stop <-chan struct{}) {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if c, err := from(40).Dial("tcp", tg.g.Addr()); err == nil {
						c.Close()
					}
				}
			})
		}},
		{"forbidden filter twice, shared subscriptions, $SYS (repeated)", func() {
			loop(2, func(i int, stop <-chan struct{}) {
				r, err := attacker(50+i, "monitor", mqtt.V5)
				if err != nil {
					return
				}
				defer r.c.Close()
				buf := mqtt.Append(nil, &mqtt.Packet{Type: mqtt.SUBSCRIBE, Version: mqtt.V5, PacketID: 2, Filters: []mqtt.Subscription{
					{Filter: []byte("pharmacy/orders")}, {Filter: []byte("pharmacy/orders")}, {Filter: []byte("$share/vitals/#")}, {Filter: []byte("$SYS/#")}}})
				for {
					select {
					case <-stop:
						return
					default:
					}
					r.c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := r.c.Write(buf); err != nil {
						return
					}
				}
			})
		}},
		{"wills outside the rights (reconnecting)", func() {
			loop(4, func(i int, stop <-chan struct{}) {
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := tls.DialWithDialer(from(60+i), "tcp", tg.g.Addr(), tg.tlsConfig(t, "flood-8"))
					if err != nil {
						continue
					}
					c.Write(mqtt.Append(nil, &mqtt.Packet{Type: mqtt.CONNECT, Version: mqtt.V311, ClientID: []byte("flood-8"), ConnectFlags: 0x02 | 0x04 | 0x20,
						KeepAlive: 30, WillTopic: []byte("pharmacy/orders"), WillPayload: []byte("morphine 100mg")}))
					c.SetReadDeadline(time.Now().Add(2 * time.Second))
					c.Read(make([]byte, 16))
					c.Close()
				}
			})
		}},
		{"TLS clients that never send CONNECT, and slow handshakes", func() {
			loop(16, func(i int, stop <-chan struct{}) {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if i%2 == 0 {
						c, err := tls.DialWithDialer(from(70+i), "tcp", tg.g.Addr(), tg.tlsConfig(t, "flood-7"))
						if err == nil {
							c.SetReadDeadline(time.Now().Add(15 * time.Second))
							c.Read(make([]byte, 1))
							c.Close()
						}
						continue
					}
					c, err := from(70+i).Dial("tcp", tg.g.Addr())
					if err == nil {
						c.SetReadDeadline(time.Now().Add(15 * time.Second))
						c.Read(make([]byte, 1))
						c.Close()
					}
				}
			})
		}},
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%-62s %12s %12s %10s %16s\n", "attack", "audit bytes", "audit MB/min", "RSS MB", "canary delivered")
	for _, a := range attacks {
		auditBefore := len(tg.audit.raw())
		s0, g0 := sent.Load(), got.Load()
		peak := rssMB()
		done, sampled := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				select {
				case <-done:
					return
				case <-time.After(100 * time.Millisecond):
					peak = max(peak, rssMB())
				}
			}
		}()
		t0 := time.Now()
		a.run()
		paused.Store(true)
		time.Sleep(300 * time.Millisecond) // the audit flush
		elapsed := time.Since(t0)
		close(done)
		<-sampled
		auditBytes := len(tg.audit.raw()) - auditBefore
		perMin := float64(auditBytes) / 1e6 / elapsed.Minutes()
		// The canary's readings still on their way are waited for (on a
		// loaded machine a flood can hold them back seconds); none are
		// sent meanwhile, so none can stand in for one lost.
		s1 := sent.Load() - s0
		for deadline := time.Now().Add(10 * time.Second); got.Load()-g0 < s1 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		g1 := got.Load() - g0
		paused.Store(false)
		fmt.Fprintf(&out, "%-62s %12d %12.2f %10.0f %9d of %4d\n", a.name, auditBytes, perMin, peak, g1, s1)
		if perMin >= 5 {
			t.Errorf("%s: the audit log grew %.1f MB a minute", a.name, perMin)
		}
		if peak >= 300*rssScale {
			t.Errorf("%s: RSS %.0f MB", a.name, peak)
		}
		if float64(g1) < 0.9*float64(s1)-2 {
			t.Errorf("%s: the canary delivered %d of %d readings", a.name, g1, s1)
		}
	}
	t.Logf("attacks of %s each, default limits:\n%s", dur, out.String())
	w, r := tg.g.AuditStats()
	t.Logf("audit: %d lines written, %d records summarised", w, r)
}

// rssMB reads this process's resident set size.
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

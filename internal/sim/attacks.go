package sim

import (
	"fmt"
	"sort"
	"strings"

	"github.com/iomtguard/iomtguard/internal/mqtt"
)

// Attack describes one attack the simulator can mount and the finding a
// correct analysis reports for it.
type Attack struct {
	Name    string
	Finding string
	About   string
	run     func(w *world, a *attackRun)
}

type attackRun struct {
	start, end int64
	sources    map[string]bool
	clientIDs  []string
	tag        frameTag
}

func (a *attackRun) source(h *host) { a.sources[h.ip.String()] = true }

// Attacks lists the attacks, by name.
var Attacks = []Attack{
	{"publish-flood", "attack.publish-flood", "two invaders publish as fast as they can on a patient topic (IoT-Flock's MQTT publish flood)", publishFlood},
	{"connect-flood", "attack.connect-flood", "ten invaders open and close MQTT sessions in a storm (distributed connection flood)", connectFlood},
	{"bruteforce", "attack.bruteforce", "an invader guesses a device's password, one CONNECT per guess", bruteforce},
	{"slow-dos", "attack.slow-dos", "an invader opens hundreds of sessions with the longest keep-alive and leaves them idle (SlowITe)", slowDoS},
	{"malformed", "attack.malformed", "an invader fuzzes the broker with malformed packets; the broker resets each connection", malformed},
	{"wildcard-subscribe", "attack.wildcard-subscribe", "an invader subscribes to '#' and '$SYS/#' and receives every reading", wildcard},
	{"syn-flood", "attack.syn-flood", "spoofed SYNs from many addresses leave the broker with half-open connections", synFlood},
	{"scan", "attack.scan", "an invader probes many ports on many ICU hosts", scan},
	{"client-id-takeover", "attack.client-id-takeover", "an invader connects with a device's client ID from another address, again and again", takeover},
	{"device-hijack", "anomaly.device-behaviour", "bed 1's infusion pump, taken over, publishes doses to a topic it never used, ten times a second (only a learned baseline tells it from a pump)", hijack},
}

// AttackByName finds an attack.
func AttackByName(name string) (Attack, bool) {
	for _, a := range Attacks {
		if a.Name == name {
			return a, true
		}
	}
	return Attack{}, false
}

// AttackNames lists the names.
func AttackNames() []string {
	var out []string
	for _, a := range Attacks {
		out = append(out, a.Name)
	}
	sort.Strings(out)
	return out
}

func (w *world) invader(i int) *host {
	return w.e.newHost(fmt.Sprintf("10.5.127.%d", 10+i), fmt.Sprintf("invader-%d", i), "Attack")
}

// loop runs fn every period (jittered) from a.start to a.end.
func (w *world) loop(a *attackRun, period int64, fn func()) {
	var tick func()
	tick = func() {
		if w.e.now > a.end {
			return
		}
		fn()
		w.e.after(max(period+w.e.jitter(-period/5, period/5), 1000), tick)
	}
	w.e.at(a.start+w.e.jitter(0, period), tick)
}

func (w *world) attacker(h *host, id string, a *attackRun) *client {
	a.source(h)
	return &client{e: w.e, b: w.broker, h: h, id: id, version: mqtt.V311, keepalive: 60, tag: a.tag}
}

func publishFlood(w *world, a *attackRun) {
	for i := 0; i < 2; i++ {
		c := w.attacker(w.invader(i), fmt.Sprintf("flood-%d", i), a)
		c.user, c.pass = w.stolenCredentials()
		w.e.at(a.start+w.e.jitter(0, 1e8), func() {
			c.onConnack = func(rc byte) {
				if rc != 0 {
					return
				}
				payload := []byte(strings.Repeat("9", 40))
				var burst func()
				burst = func() {
					if w.e.now > a.end || !c.connected {
						return
					}
					// 20 publishes per burst, a burst every 10 ms: about 2,000 a second each.
					for k := 0; k < 20; k++ {
						c.publish("1/ecg", payload, 0, false)
					}
					w.e.after(10e6+w.e.jitter(0, 1e6), burst)
				}
				burst()
			}
			c.connect()
		})
	}
}

func connectFlood(w *world, a *attackRun) {
	hosts := make([]*host, 10)
	for i := range hosts {
		hosts[i] = w.invader(i)
	}
	n := 0
	// 60 sessions a second over ten sources.
	w.loop(a, 16e6, func() {
		h := hosts[n%len(hosts)]
		n++
		c := w.attacker(h, fmt.Sprintf("storm-%x", w.e.rng.Uint32()), a)
		c.user, c.pass = w.stolenCredentials()
		c.onConnack = func(rc byte) {
			w.e.after(w.e.jitter(1e6, 5e6), func() {
				if c.connected {
					c.disconnect()
				} else if c.t != nil {
					c.t.close(toServer)
				}
			})
		}
		c.connect()
	})
}

func bruteforce(w *world, a *attackRun) {
	w.broker.requireAuth = true
	h := w.invader(0)
	target := "bed1-pump"
	if len(w.devices) == 0 {
		target = "admin"
	}
	guesses := []string{"123456", "password", "admin", "12345678", "qwerty", "letmein", "medical", "hospital", "icu2024", "welcome"}
	n := 0
	// A guess every 250 ms, each on a fresh connection, as MQTTset's brute force did.
	w.loop(a, 250e6, func() {
		if w.opts.Guesses > 0 && n >= w.opts.Guesses {
			return
		}
		c := w.attacker(h, fmt.Sprintf("bf-%d", n), a)
		c.user = target
		c.pass = fmt.Sprintf("%s%d", guesses[n%len(guesses)], n/len(guesses))
		n++
		c.onConnack = func(rc byte) {
			if rc == 0 {
				w.e.after(w.e.jitter(1e6, 4e6), c.disconnect)
			}
		}
		c.connect()
	})
}

func slowDoS(w *world, a *attackRun) {
	h := w.invader(0)
	n := 0
	// SlowITe: a session every 100 ms, keep-alive 65535 s, then silence.
	w.loop(a, 100e6, func() {
		c := w.attacker(h, fmt.Sprintf("slow-%d", n), a)
		c.user, c.pass = w.stolenCredentials()
		c.keepalive = 65535
		n++
		c.connect()
	})
}

func malformed(w *world, a *attackRun) {
	h := w.invader(0)
	samples := [][]byte{
		{0x36, 5, 0, 1, 'a', 0, 1},           // QoS 3
		{0x80, 6, 0, 1, 0, 1, '#', 0},        // SUBSCRIBE with reserved flags 0
		{0x00, 0},                            // type 0
		{0xf0, 0},                            // AUTH in 3.1.1
		{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, // five-byte length
		{0x10, 12, 0, 4, 'M', 'Q', 'X', 'X', 4, 2, 0, 60, 0, 0}, // bad protocol name
		{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 3, 0, 60, 0, 0}, // reserved connect flag
		{0x30, 3, 0, 0, 'x'}, // empty topic
		{0x62, 2, 0, 1},      // PUBREL before CONNECT
	}
	n := 0
	w.loop(a, 80e6, func() {
		c := w.attacker(h, fmt.Sprintf("fuzz-%d", n), a)
		i := n
		n++
		c.t = w.e.dial(c.h, w.broker.h, w.broker.port, c.tag, func(t *tcpConn) {
			if i%3 == 0 {
				c.sendRaw(samples[(i/3)%len(samples)]) // before any CONNECT
				return
			}
			c.send(&mqtt.Packet{Type: mqtt.CONNECT, ClientID: []byte(c.id), ConnectFlags: 2, KeepAlive: 60,
				Username: strBytes(w.credUser()), Password: strBytes(w.credPass())})
			w.e.after(w.e.jitter(2e6, 6e6), func() { c.sendRaw(samples[i%len(samples)]) })
		})
		w.broker.accept(c.t)
		c.t.onData[toClient] = c.receive
	})
}

func wildcard(w *world, a *attackRun) {
	c := w.attacker(w.invader(0), "monitor-"+fmt.Sprint(w.e.rng.IntN(1000)), a)
	c.user, c.pass = w.stolenCredentials()
	w.e.at(a.start, func() {
		c.onConnack = func(rc byte) {
			if rc == 0 {
				c.subscribe("#")
				w.e.after(w.e.jitter(2e9, 4e9), func() { c.subscribe("$SYS/#") })
			}
		}
		c.connect()
	})
	w.e.at(a.end, func() { c.disconnect() })
}

func synFlood(w *world, a *attackRun) {
	a.sources["spoofed 172.16.0.0/12"] = true
	// 500 SYNs a second from random spoofed addresses.
	w.loop(a, 2e6, func() {
		src := w.e.newHost(fmt.Sprintf("172.%d.%d.%d", 16+w.e.rng.IntN(16), w.e.rng.IntN(256), 1+w.e.rng.IntN(254)), "spoofed", "Attack")
		w.e.synOnly(src, uint16(1024+w.e.rng.IntN(64000)), w.broker.h, w.broker.port, true, a.tag)
	})
}

func scan(w *world, a *attackRun) {
	h := w.invader(0)
	a.source(h)
	ports := []uint16{21, 22, 23, 25, 53, 80, 102, 110, 135, 139, 143, 161, 443, 445, 502, 1433, 1883, 2404, 3306, 3389, 5432, 5683, 5900, 8080, 8883, 20000, 44818, 47808}
	var targets []*host
	targets = append(targets, w.broker.h)
	for _, d := range w.devices {
		targets = append(targets, d.c.h)
	}
	i := 0
	sport := uint16(40000 + w.e.rng.IntN(20000))
	w.loop(a, 5e6, func() {
		t := targets[(i/len(ports))%len(targets)]
		p := ports[i%len(ports)]
		i++
		open := t == w.broker.h && p == w.broker.port
		w.e.synOnly(h, sport, t, p, open, a.tag)
	})
}

func takeover(w *world, a *attackRun) {
	h := w.invader(0)
	victim := "bed1-ecg"
	w.loop(a, 20e9, func() {
		c := w.attacker(h, victim, a)
		c.user, c.pass = w.stolenCredentials()
		c.onConnack = func(rc byte) {
			if rc == 0 {
				c.publish("1/ecg", []byte("0"), 0, false)
				w.e.after(w.e.jitter(3e9, 6e9), c.disconnect)
			}
		}
		c.connect()
	})
}

// hijack makes bed 1's infusion pump (its own connection, address and
// credentials: the device itself is compromised) publish doses on a topic
// it never used, every 100 ms, for the attack's duration.
func hijack(w *world, a *attackRun) {
	var pump *device
	for _, d := range w.devices {
		if d.c.id == "bed1-pump" {
			pump = d
		}
	}
	if pump == nil {
		return // no bed 1 (icu-environment): nothing to take over
	}
	a.clientIDs = append(a.clientIDs, pump.c.id)
	w.loop(a, 100e6, func() {
		if pump.c.connected {
			pump.c.publish("1/pump/dose", []byte(fmt.Sprintf("%.1f", 5+w.e.rng.Float64()*20)), 1, false)
		}
	})
}

// stolenCredentials are a device's credentials (an attacker on a cleartext
// network sniffs them), or none when the ICU is anonymous.
func (w *world) stolenCredentials() (string, string) { return w.credUser(), w.credPass() }

func (w *world) credUser() string {
	if w.opts.Anonymous || len(w.clients) == 0 {
		return ""
	}
	return w.clients[0].user
}

func (w *world) credPass() string {
	if w.opts.Anonymous || len(w.clients) == 0 {
		return ""
	}
	return w.clients[0].pass
}

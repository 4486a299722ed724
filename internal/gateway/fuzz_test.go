package gateway

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pki"
)

// FuzzSession feeds arbitrary bytes to the gateway from a TLS session
// authenticated as "fuzz-dev" (after a CONNECT built from the input's first
// byte, or the input's own CONNECT), while another device publishes on
// topics fuzz-dev may and may not read, and checks, through an observer
// hook on the broker, that nothing outside fuzz-dev's rights happened:
// every message it got accepted, retained or sent as its will is inside
// its publish rights, and every message delivered to it is inside its
// subscribe rights. A panic anywhere fails too.
//
//	go test ./internal/gateway -run - -fuzz FuzzSession -fuzztime 10m
func FuzzSession(f *testing.F) {
	fz := fuzzGateway(f)
	c := func(v byte, pkts ...*mqtt.Packet) []byte {
		b := []byte{v}
		for _, p := range pkts {
			p.Version = mqtt.Version(map[byte]byte{0: 4, 1: 5, 2: 3}[v%3])
			b = mqtt.Append(b, p)
		}
		return b
	}
	f.Add(c(0, &mqtt.Packet{Type: mqtt.SUBSCRIBE, PacketID: 1, Filters: []mqtt.Subscription{{Filter: []byte("pharmacy/orders")}, {Filter: []byte("pharmacy/orders")}}}))
	f.Add(c(1, &mqtt.Packet{Type: mqtt.SUBSCRIBE, PacketID: 1, Filters: []mqtt.Subscription{{Filter: []byte("$share/g/#")}, {Filter: []byte("$SYS/#")}, {Filter: []byte("icu/+/ecg")}}}))
	f.Add(c(1, &mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte("icu/bed9/pump"), QoS: 2, PacketID: 3, Payload: []byte("x")}))
	f.Add(c(0, &mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte("icu/fuzz-dev/ecg"), QoS: 1, PacketID: 3, Retain: true, Payload: []byte("x")}))
	f.Add(c(1, &mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte("icu/fuzz-dev/ecg"), QoS: 1, PacketID: 3, Payload: []byte("x")}))
	f.Add(c(0, &mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte("$SYS/broker/uptime"), QoS: 1, PacketID: 4}))
	raw := []byte{0x80} // the input's own CONNECT
	raw = mqtt.Append(raw, &mqtt.Packet{Type: mqtt.CONNECT, Version: mqtt.V5, ClientID: []byte("fuzz-dev"), ConnectFlags: 0x02 | 0x04 | 0x20, KeepAlive: 10,
		WillTopic: []byte("pharmacy/orders"), WillPayload: []byte("morphine")})
	f.Add(raw)
	alias := &mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte("icu/fuzz-dev/ecg"), Payload: []byte("1")}
	alias.Props.TopicAlias = 1
	alias.Props.Set(mqtt.PropTopicAlias)
	alias2 := &mqtt.Packet{Type: mqtt.PUBLISH, Payload: []byte("1")}
	alias2.Props.TopicAlias = 1
	alias2.Props.Set(mqtt.PropTopicAlias)
	f.Add(c(1, alias, alias2))
	f.Fuzz(func(t *testing.T, in []byte) {
		fz.run(t, in)
	})
}

type fuzzGW struct {
	g   *Gateway
	dir string
	cfg *tls.Config
	obs *observer
}

var (
	fuzzOnce sync.Once
	fuzzInst *fuzzGW
)

func fuzzGateway(f *testing.F) *fuzzGW {
	fuzzOnce.Do(func() {
		dir, err := os.MkdirTemp("", "iomtguard-fuzz-gw-")
		if err != nil {
			f.Fatal(err)
		}
		pki.Init(dir, pki.Options{})
		pki.Issue(dir, "gateway", pki.Options{Server: true, Hosts: []string{"127.0.0.1"}})
		for _, n := range []string{"fuzz-dev", "bed9"} {
			pki.Issue(dir, n, pki.Options{})
		}
		pol := filepath.Join(dir, "policy.yaml")
		os.WriteFile(pol, []byte(`devices:
  fuzz-dev: {publish: ["icu/fuzz-dev/ecg", "icu/fuzz-dev/status"], subscribe: ["icu/+/ecg"]}
  bed9:     {publish: ["icu/bed9/ecg", "icu/bed9/pump", "pharmacy/orders"]}
sealed_topics: ["icu/+/status"]
no_retain: ["icu/+/ecg"]
limits:
  connects_per_minute_per_ip: 100000000
  connects_per_minute_per_identity: 100000000
  auth_failures_before_ban: 1000000
  publishes_per_second: 100000
  handshake_timeout: 1s
`), 0o644)
		g, err := New(Config{Listen: "127.0.0.1:0", PKI: dir, Policy: pol, Metrics: "off", State: "none", ClientID: "prefix",
			FindingsEvery: time.Hour}, Options{Audit: io.Discard})
		if err != nil {
			f.Fatal(err)
		}
		obs := &observer{g: g}
		g.srv.AddHook(obs, nil)
		if err := g.Start(); err != nil {
			f.Fatal(err)
		}
		pool := x509.NewCertPool()
		b, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
		pool.AppendCertsFromPEM(b)
		pair, _ := tls.LoadX509KeyPair(filepath.Join(dir, "fuzz-dev.crt"), filepath.Join(dir, "fuzz-dev.key"))
		cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
		fz := &fuzzGW{g: g, dir: dir, cfg: cfg, obs: obs}
		// bed9 publishes, with a retained message fuzz-dev may not read.
		p9, _ := tls.LoadX509KeyPair(filepath.Join(dir, "bed9.crt"), filepath.Join(dir, "bed9.key"))
		c9, err := tls.Dial("tcp", g.Addr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{p9}})
		if err != nil {
			f.Fatal(err)
		}
		c9.Write(mqtt.Append(nil, &mqtt.Packet{Type: mqtt.CONNECT, Version: mqtt.V311, ClientID: []byte("bed9"), ConnectFlags: 2, KeepAlive: 60}))
		c9.Write(mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBLISH, Version: mqtt.V311, Topic: []byte("pharmacy/orders"), Retain: true, Payload: []byte("morphine")}))
		go io.Copy(io.Discard, c9)
		go func() {
			for i := 0; ; i++ {
				time.Sleep(50 * time.Millisecond)
				topic := []string{"icu/bed9/ecg", "icu/bed9/pump", "pharmacy/orders"}[i%3]
				if _, err := c9.Write(mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBLISH, Version: mqtt.V311, Topic: []byte(topic), Payload: []byte("bed9")})); err != nil {
					return
				}
				if i%60 == 0 {
					c9.Write(mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PINGREQ, Version: mqtt.V311}))
				}
			}
		}()
		fuzzInst = fz
	})
	return fuzzInst
}

func (fz *fuzzGW) run(t *testing.T, in []byte) {
	if len(in) == 0 {
		return
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fz.g.Addr(), fz.cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	head, body := in[0], in[1:]
	var stream []byte
	if head&0x80 == 0 {
		v := []mqtt.Version{mqtt.V311, mqtt.V5, mqtt.V31}[int(head)%3]
		flags := byte(0x02)
		if head&0x08 != 0 {
			flags = 0 // persistent session
		}
		stream = mqtt.Append(nil, &mqtt.Packet{Type: mqtt.CONNECT, Version: v, ClientID: []byte("fuzz-dev"), ConnectFlags: flags, KeepAlive: 10})
	}
	stream = append(stream, body...)
	// Read while writing: the gateway writes acknowledgements from the
	// goroutine that reads, so a client that stops reading stops it too.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 64<<10)
		for {
			c.SetReadDeadline(time.Now().Add(25 * time.Millisecond))
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.Write(stream)
	select {
	case <-drained:
	case <-time.After(120 * time.Millisecond):
		c.Close()
		<-drained
	}
	if v := fz.obs.take(); len(v) > 0 {
		t.Fatalf("policy bypass:\n%s", strings.Join(v, "\n"))
	}
}

// observer is a broker hook after the gateway's that records anything
// fuzz-dev did or received outside its rights.
type observer struct {
	mochi.HookBase
	g          *Gateway
	mu         sync.Mutex
	violations []string
}

func (o *observer) ID() string { return "fuzz-observer" }
func (o *observer) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnPublished, mochi.OnRetainMessage, mochi.OnWillSent, mochi.OnPacketSent}, []byte{b})
}

func (o *observer) fail(format string, a ...any) {
	o.mu.Lock()
	o.violations = append(o.violations, fmt.Sprintf(format, a...))
	o.mu.Unlock()
}

func (o *observer) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := o.violations
	o.violations = nil
	return v
}

func (o *observer) identity(cl *mochi.Client) string {
	if c := conn(cl); c != nil {
		return c.identity
	}
	return ""
}

var fuzzPub = &rights{identity: "fuzz-dev", pub: []string{"icu/fuzz-dev/ecg", "icu/fuzz-dev/status"}, sub: []string{"icu/+/ecg"}}

func (o *observer) checkPublished(what string, cl *mochi.Client, pk packets.Packet) {
	if o.identity(cl) != "fuzz-dev" {
		return
	}
	lim := o.g.limits()
	if v := decidePublish(o.g.policy(), &lim, fuzzPub, pk.TopicName, pk.FixedHeader.Retain, pk.Payload); !v.ok() {
		o.fail("%s by fuzz-dev on %q (retain %v, %d bytes): %s", what, pk.TopicName, pk.FixedHeader.Retain, len(pk.Payload), v.reason)
	}
}

func (o *observer) OnPublished(cl *mochi.Client, pk packets.Packet) {
	o.checkPublished("message accepted", cl, pk)
}

func (o *observer) OnRetainMessage(cl *mochi.Client, pk packets.Packet, r int64) {
	o.checkPublished("message retained", cl, pk)
}

func (o *observer) OnWillSent(cl *mochi.Client, pk packets.Packet) {
	if pk.TopicName == refusedWill {
		return
	}
	o.checkPublished("will sent", cl, pk)
}

func (o *observer) OnPacketSent(cl *mochi.Client, pk packets.Packet, b []byte) {
	if pk.FixedHeader.Type != packets.Publish || o.identity(cl) != "fuzz-dev" {
		return
	}
	topic := pk.TopicName
	if topic == "" {
		return // an alias to a topic already checked
	}
	if !fuzzPub.mayReceive(topic) {
		o.fail("delivered to fuzz-dev on %q", topic)
	}
}

package gateway

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iomtguard/iomtguard/internal/policy"
)

// upstream relays the gateway's traffic to the hospital's own broker
// (Mosquitto, EMQX, a NATS server's MQTT listener) over MQTT 3.1.1, the
// version all of them speak, with the gateway's own credentials. Devices
// keep talking to the gateway, which enforces identity, policy, limits and
// sealed topics; what it allows is published upstream, and what upstream
// sends on the filters local clients subscribed to is delivered to them
// (the local broker then applies each client's rights to every delivery).
// The local broker does not deliver device publishes itself, so nothing
// arrives twice: upstream is the single source of deliveries and of
// retained messages.
//
// Publishes wait in a bounded queue while upstream is unreachable; past
// it they are dropped and counted (metrics and /healthz).
type upstream struct {
	g      *Gateway
	client paho.Client
	queue  chan packets.Packet
	done   chan struct{}
	wg     sync.WaitGroup

	mu   sync.Mutex
	subs map[string]map[string]bool // upstream filter -> local client IDs holding it

	// retainMu makes "is it held already? store and deliver" one step:
	// paho runs callbacks concurrently (OrderMatters false), and upstream
	// sends a retained message once per overlapping subscription.
	retainMu sync.Mutex

	connected atomic.Bool
	dropped   atomic.Int64
	sent      atomic.Int64
	received  atomic.Int64
	lastErr   atomic.Value
}

// upstreamQueue bounds the publishes held while upstream is unreachable.
const upstreamQueue = 10000

func newUpstream(g *Gateway) (*upstream, error) {
	cfg := &g.cfg
	u, _ := url.Parse(cfg.Upstream)
	var broker string
	o := paho.NewClientOptions()
	switch u.Scheme {
	case "mqtts", "ssl", "tls":
		broker = "ssl://" + u.Host
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
		if cfg.UpstreamCA != "" {
			b, err := os.ReadFile(cfg.UpstreamCA)
			if err != nil {
				return nil, fmt.Errorf("%w: upstream_ca: %v", ErrConfig, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("%w: upstream_ca: %s holds no certificate", ErrConfig, cfg.UpstreamCA)
			}
		}
		cert, key := cfg.UpstreamCert, cfg.UpstreamKey
		if cert == "" && cfg.PKI != "" {
			cert, key = filepath.Join(cfg.PKI, "gateway.crt"), filepath.Join(cfg.PKI, "gateway.key")
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("%w: upstream_cert: %v", ErrConfig, err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		o.SetTLSConfig(tc)
	default:
		broker = "tcp://" + u.Host
	}
	o.AddBroker(broker)
	id := cfg.UpstreamClientID
	if id == "" {
		host, _ := os.Hostname()
		id = "iomtguard-gateway-" + host
	}
	o.SetClientID(id)
	if cfg.UpstreamUser != "" {
		o.SetUsername(cfg.UpstreamUser)
	}
	if cfg.UpstreamPasswordFile != "" {
		b, err := os.ReadFile(cfg.UpstreamPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("%w: upstream_password_file: %v", ErrConfig, err)
		}
		o.SetPassword(strings.TrimRight(string(b), "\r\n"))
	}
	up := &upstream{g: g, queue: make(chan packets.Packet, upstreamQueue), done: make(chan struct{}), subs: map[string]map[string]bool{}}
	o.SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).SetKeepAlive(30 * time.Second).SetOrderMatters(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			up.connected.Store(false)
			up.lastErr.Store(err.Error())
			g.log.Warn("gateway: upstream connection lost", "broker", broker, "error", err)
		}).
		SetOnConnectHandler(func(c paho.Client) {
			up.connected.Store(true)
			up.lastErr.Store("")
			g.log.Info("gateway: upstream connected", "broker", broker)
			up.resubscribe()
		})
	up.client = paho.NewClient(o)
	return up, nil
}

func (u *upstream) start() error {
	tok := u.client.Connect()
	// With ConnectRetry the token completes once connected; wait a little
	// so that a wrong address or credentials show at start.
	if tok.WaitTimeout(5*time.Second) && tok.Error() != nil {
		return fmt.Errorf("gateway: upstream %s: %w", u.g.cfg.Upstream, tok.Error())
	}
	if !u.connected.Load() {
		u.g.log.Warn("gateway: upstream not reachable yet; publishes are queued", "broker", u.g.cfg.Upstream)
	}
	u.wg.Add(1)
	go u.send()
	return nil
}

// publish queues an allowed PUBLISH for upstream.
func (u *upstream) publish(pk packets.Packet) {
	out := packets.Packet{FixedHeader: pk.FixedHeader, TopicName: pk.TopicName, Payload: append([]byte(nil), pk.Payload...)}
	select {
	case u.queue <- out:
	default:
		u.dropped.Add(1)
		u.g.metrics.upstream.WithLabelValues("out", "dropped").Inc()
	}
}

// send publishes the queue upstream, in order, waiting while upstream is
// unreachable.
func (u *upstream) send() {
	defer u.wg.Done()
	for {
		select {
		case <-u.done:
			return
		case pk := <-u.queue:
			for {
				tok := u.client.Publish(pk.TopicName, pk.FixedHeader.Qos, pk.FixedHeader.Retain, pk.Payload)
				if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
					u.sent.Add(1)
					u.g.metrics.upstream.WithLabelValues("out", "sent").Inc()
					break
				}
				select {
				case <-u.done:
					return
				case <-time.After(500 * time.Millisecond):
				}
			}
		}
	}
}

// receive delivers a message from upstream to the local subscribers.
func (u *upstream) receive(_ paho.Client, m paho.Message) {
	retain := m.Retained()
	if retain {
		u.retainMu.Lock()
		defer u.retainMu.Unlock()
		// Upstream sends its retained messages again at every
		// (re)subscription: one the local broker already holds is not news
		// (delivering it again gave subscribers duplicates when the
		// upstream connection came back under load).
		if held, ok := u.g.srv.Topics.Retained.Get(m.Topic()); ok && bytes.Equal(held.Payload, m.Payload()) {
			return
		}
	}
	u.received.Add(1)
	u.g.metrics.upstream.WithLabelValues("in", "delivered").Inc()
	if retain && len(m.Payload()) > 0 {
		if _, full := u.g.retainedFull(m.Topic(), u.g.limits().MaxRetained); full {
			retain = false // the local copy of upstream's retained messages is bounded too
		}
	}
	u.g.srv.Publish(m.Topic(), m.Payload(), retain, m.Qos())
}

// upstreamFilter is the filter to subscribe upstream for a local one: the
// filter inside a shared subscription (the local broker shares it out).
func upstreamFilter(f string) string {
	if _, inner, ok, err := policy.SplitShared(f); ok && err == nil {
		return inner
	}
	return f
}

func (u *upstream) subscribe(clientID, f string) {
	f = upstreamFilter(f)
	u.mu.Lock()
	holders := u.subs[f]
	first := holders == nil
	if first {
		holders = map[string]bool{}
		u.subs[f] = holders
	}
	holders[clientID] = true
	u.mu.Unlock()
	if first && u.connected.Load() {
		u.client.Subscribe(f, 1, u.receive)
	}
}

func (u *upstream) unsubscribe(clientID, f string) {
	f = upstreamFilter(f)
	u.mu.Lock()
	holders := u.subs[f]
	delete(holders, clientID)
	last := holders != nil && len(holders) == 0
	if last {
		delete(u.subs, f)
	}
	u.mu.Unlock()
	if last && u.connected.Load() {
		u.client.Unsubscribe(f)
	}
}

// resubscribe restores every upstream subscription after a (re)connect.
func (u *upstream) resubscribe() {
	u.mu.Lock()
	filters := map[string]byte{}
	for f := range u.subs {
		filters[f] = 1
	}
	u.mu.Unlock()
	if len(filters) > 0 {
		u.client.SubscribeMultiple(filters, u.receive)
	}
}

func (u *upstream) health() map[string]any {
	h := map[string]any{"broker": u.g.cfg.Upstream, "connected": u.connected.Load(), "sent": u.sent.Load(),
		"received": u.received.Load(), "dropped": u.dropped.Load(), "queued": len(u.queue)}
	u.mu.Lock()
	h["subscriptions"] = len(u.subs)
	u.mu.Unlock()
	if e, _ := u.lastErr.Load().(string); e != "" {
		h["last_error"] = e
	}
	return h
}

func (u *upstream) stop() {
	close(u.done)
	u.wg.Wait()
	u.client.Disconnect(250)
}

// upstreamSubscribe and upstreamUnsubscribe track the local subscriptions
// upstream must serve (no-ops without an upstream).
func (g *Gateway) upstreamSubscribe(clientID, f string) {
	if g.up != nil {
		g.up.subscribe(clientID, f)
	}
}

func (g *Gateway) upstreamUnsubscribe(clientID, f string) {
	if g.up != nil {
		g.up.unsubscribe(clientID, f)
	}
}

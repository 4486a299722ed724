package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/pki"
	"github.com/iomtguard/iomtguard/internal/policy"
)

// Gateway is a running (or ready) secure broker.
type Gateway struct {
	cfg       Config
	tlsConfig *tls.Config
	ca        *x509.Certificate
	srv       *mqtt.Server
	hook      *hook
	listener  *tlsListener
	audit     *audit
	metrics   *metrics
	bans      *bans
	bridge    *bridge
	up        *upstream    // nil unless Config.Upstream
	wills     wills        // delayed wills, held until their delay ends
	willFrom  *mqtt.Client // publishes them: inline (no ACL, no network), not a session
	cluster   *cluster     // nil unless Config.NATS
	log       *slog.Logger
	now       func() time.Time

	// cur is what a reload replaces: the policy, its limits, the password
	// file and the CRL, with their load status.
	cur      atomic.Pointer[config]
	reloadMu sync.Mutex
	stop     chan struct{}
	wg       sync.WaitGroup

	mu        sync.Mutex
	perIP     map[string]int     // open connections per address
	open      int                // open connections in all
	ipRate    map[string]*window // connection attempts per address
	idRate    map[string]*window // connects per identity
	authFails map[string]*window // failed authentications per address and identity
	httpSrv   *http.Server
	httpLn    net.Listener
	closed    bool
}

// Options are what New needs beyond the Config.
type Options struct {
	Logger *slog.Logger // operational log (default: discard)
	Audit  io.Writer    // overrides Config.Audit
	Now    func() time.Time
	// AuditOptions bound the audit log (summaries, line budget, rotation).
	AuditOptions AuditOptions
}

// maxTracked bounds each per-address and per-identity table; past it the
// table starts again (an address-spraying storm cannot grow it).
const maxTracked = 100000

// New checks the configuration, loads the certificates, policy,
// password file and CRL, and prepares the broker. Nothing listens yet.
func New(cfg Config, opts Options) (*Gateway, error) {
	cfg.defaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: opts.Logger, now: opts.Now, perIP: map[string]int{}, ipRate: map[string]*window{},
		idRate: map[string]*window{}, authFails: map[string]*window{}, stop: make(chan struct{})}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	var err error
	if g.tlsConfig, err = g.loadTLS(); err != nil {
		return nil, err
	}
	c, err := g.loadConfig(nil)
	if err != nil {
		return nil, err
	}
	g.cur.Store(c)
	aw := opts.Audit
	if aw == nil {
		if cfg.Audit == "-" {
			aw = os.Stderr
		} else {
			f, err := openRotating(cfg.Audit, cfg.AuditMaxSize, cfg.AuditKeep)
			if err != nil {
				return nil, fmt.Errorf("%w: audit: %v", ErrConfig, err)
			}
			aw = f
		}
	}
	ao := opts.AuditOptions
	if ao.MaxSize == 0 {
		ao.MaxSize = cfg.AuditMaxSize
	}
	g.audit = newAudit(aw, ao, g.now)
	state := cfg.stateDir()
	if state != "" {
		if err := os.MkdirAll(state, 0o700); err != nil {
			return nil, fmt.Errorf("%w: state directory: %v", ErrConfig, err)
		}
	}
	g.bans = newBans(statePath(state, "bans.json"), g.log)
	g.metrics = newMetrics(func() float64 { return float64(len(g.bans.list(g.now()))) }, func() float64 {
		if g.srv == nil {
			return 0
		}
		return float64(atomic.LoadInt64(&g.srv.Info.ClientsConnected))
	}, func() float64 {
		w, _ := g.audit.stats()
		return float64(w)
	}, func() float64 {
		_, r := g.audit.stats()
		return float64(r)
	})
	det, err := detect.New(c.pol)
	if err != nil {
		return nil, err
	}
	g.bridge = newBridge(det)

	lim := c.lim
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(lim.MaxPacketSize)
	caps.MaximumClientWritesPending = int32(lim.MaxQueuedMessages)
	caps.MaximumInflight = uint16(lim.MaxInflight)
	caps.ReceiveMaximum = uint16(lim.MaxInflight)
	caps.TopicAliasMaximum = uint16(lim.MaxTopicAliases)
	caps.MaximumSessionExpiryInterval = uint32(lim.MaxSessionExpiry.V)
	caps.MaximumClients = int64(lim.MaxConnections)
	g.srv = mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.DiscardHandler), InlineClient: cfg.Upstream != "",
		SysTopicResendInterval: 10})
	g.hook = &hook{g: g}
	// Not mochi's inline client (Options.InlineClient): that one is held
	// among the sessions, where it would count against max_sessions and
	// take the client ID "inline" from the devices.
	g.willFrom = g.srv.NewClient(nil, mqtt.LocalListener, "$iomtguard-will", true)
	if err := g.srv.AddHook(g.hook, nil); err != nil {
		return nil, err
	}
	g.listener = newTLSListener("mqtts", cfg.Listen, g)
	if err := g.srv.AddListener(g.listener); err != nil {
		return nil, fmt.Errorf("gateway: listen on %s: %w", cfg.Listen, err)
	}
	if cfg.Upstream != "" {
		if g.up, err = newUpstream(g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func statePath(dir, name string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, name)
}

// loadTLS builds the listener's TLS configuration: the gateway's
// certificate, client certificates required and verified against the CA,
// and the CRL in force checked at every handshake.
func (g *Gateway) loadTLS() (*tls.Config, error) {
	cert, key := g.certFiles()
	_, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %v (issue one: iomtguard pki issue --dir %s --name gateway --server --host HOST)", ErrConfig, err, g.cfg.PKI)
	}
	caFile := filepath.Join(g.cfg.PKI, "ca.crt")
	cab, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: client CA: %v", ErrConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cab) {
		return nil, fmt.Errorf("%w: %s holds no certificate", ErrConfig, caFile)
	}
	g.ca, _ = pki.ParseCertPEM(cab)
	min := uint16(tls.VersionTLS12)
	if g.cfg.MinTLS == "1.3" {
		min = tls.VersionTLS13
	}
	return &tls.Config{
		// The certificate in force: a renewed one (pki renew) is served from
		// the next handshake on, without a restart (reload.go).
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return g.cur.Load().cert, nil },
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      pool,
		MinVersion:     min,
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 {
				return nil
			}
			if leaf := chains[0][0]; g.revoked(leaf) {
				return &certRevoked{name: leaf.Subject.CommonName, serial: leaf.SerialNumber.Text(16)}
			}
			return nil
		},
	}, nil
}

// certFiles are the gateway's certificate and key files.
func (g *Gateway) certFiles() (cert, key string) {
	cert, key = g.cfg.Cert, g.cfg.Key
	if cert == "" {
		cert = filepath.Join(g.cfg.PKI, "gateway.crt")
	}
	if key == "" {
		key = filepath.Join(g.cfg.PKI, "gateway.key")
	}
	return cert, key
}

// The configuration in force (replaced whole by a reload).
func (g *Gateway) policy() *policy.Policy { return g.cur.Load().pol }
func (g *Gateway) limits() policy.Limits  { return g.cur.Load().lim }

// revoked reports whether the CRL in force (or a revocation shared by
// another gateway) lists the certificate.
func (g *Gateway) revoked(leaf *x509.Certificate) bool {
	if leaf == nil {
		return false
	}
	return g.cur.Load().revoked[leaf.SerialNumber.Text(16)]
}

// Addr is the address the TLS listener is bound to (after Start).
func (g *Gateway) Addr() string { return g.listener.Address() }

// MetricsAddr is the address of the metrics server (after Start), or "".
func (g *Gateway) MetricsAddr() string {
	if g.httpLn == nil {
		return ""
	}
	return g.httpLn.Addr().String()
}

// Start opens the listeners and serves in the background.
func (g *Gateway) Start() error {
	if g.cfg.Metrics != "off" {
		ln, err := net.Listen("tcp", g.cfg.Metrics)
		if err != nil {
			return fmt.Errorf("gateway: metrics on %s: %w", g.cfg.Metrics, err)
		}
		g.httpLn = ln
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", g.serveHealth)
		mux.HandleFunc("/bans", g.serveBans)
		mux.HandleFunc("/reload", g.serveReload)
		g.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10}
		go g.httpSrv.Serve(ln)
	}
	if g.cfg.NATS != "" {
		cl, err := newCluster(g)
		if err != nil {
			g.closeHTTP()
			return err
		}
		g.cluster = cl
		g.refreshRevocations()
	}
	if g.up != nil {
		if err := g.up.start(); err != nil {
			g.closeHTTP()
			return err
		}
	}
	if err := g.srv.Serve(); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.bridge.start(g, g.cfg.FindingsEvery)
	g.wg.Add(1)
	go g.watch()
	g.audit.log(Record{Action: "start", Verdict: "info", Reason: "listening on " + g.Addr()})
	return nil
}

// Run starts the gateway and serves until ctx ends, then shuts down
// gracefully.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return g.Close()
}

func (g *Gateway) closeHTTP() {
	if g.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		g.httpSrv.Shutdown(ctx)
		cancel()
	}
}

// Close stops listening, disconnects the clients (within seconds, whatever
// they do) and flushes the audit log.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	close(g.stop)
	g.wills.close()
	g.wg.Wait()
	g.bridge.stop()
	err := g.closeBroker(brokerCloseWait)
	if g.up != nil {
		g.up.stop()
	}
	if g.cluster != nil {
		g.cluster.close()
	}
	g.closeHTTP()
	g.bans.flush()
	stop := Record{Action: "stop", Verdict: "info"}
	if err == nil {
		g.bridge.report(g) // the last findings
	} else {
		// A client still running may hold the detectors' lock: their last
		// findings are not waited for.
		stop.Reason = err.Error()
	}
	if !g.audit.close(stop, 5*time.Second) && err == nil {
		err = errors.New("gateway: the audit log's last lines could not be written within 5 s (its sink stalled)")
	}
	return err
}

// stuckClose, when set (by the tests), is called when the broker's clients
// have not all ended within closeBroker's wait: the tests then fail with
// every goroutine's stack instead of hanging until the test binary's
// time-out (a CI run once waited 30 minutes on one client that never ended).
var stuckClose func()

// brokerCloseWait is how long Close waits for the broker's clients.
var brokerCloseWait = 15 * time.Second

// closeBroker closes the broker, waiting at most wait: the broker's own Close
// waits for every client's goroutine, and Gateway.Close must return within
// seconds whatever the clients do (fail closed: the listener is already shut,
// so nothing new gets in). A client still running past it is logged and
// makes Close return an error.
func (g *Gateway) closeBroker(wait time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- g.srv.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		// Counted aside: if the broker's lock of its clients is stuck (see
		// tlsListener.Close), Len would hang Close with it.
		count := make(chan int, 1)
		go func() { count <- g.srv.Clients.Len() }()
		n := -1
		select {
		case n = <-count:
		case <-time.After(time.Second):
		}
		g.log.Warn("gateway: broker clients still running at shutdown; not waiting for them", "waited", wait.String(), "clients", n)
		if stuckClose != nil {
			stuckClose()
		}
		// What they do from now on (a last audit line, a last event to the
		// detectors) comes after the audit log is closed and is lost: said
		// here, not hidden.
		if n < 0 {
			return fmt.Errorf("gateway: broker clients still running %s after the listener closed (how many is unknown: the broker's table of clients stays locked); their last records may be lost", wait)
		}
		return fmt.Errorf("gateway: %d broker clients still running %s after the listener closed; their last records may be lost", n, wait)
	}
}

// serveBans lists bans (GET), imposes one (POST ?key=identity:bed1-ecg&for=1h&reason=...)
// and lifts one (DELETE ?key=ip:10.0.0.7).
func (g *Gateway) serveBans(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	key := r.URL.Query().Get("key")
	switch r.Method {
	case http.MethodGet:
		json.NewEncoder(w).Encode(g.bans.list(g.now()))
	case http.MethodPost:
		if err := checkBanKey(key); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		d := g.limits().Ban.Seconds()
		if s := r.URL.Query().Get("for"); s != "" {
			var err error
			if d, err = time.ParseDuration(s); err != nil || d <= 0 {
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]string{"error": "for: want a positive duration such as 1h"})
				return
			}
		}
		reason, _ := capString(r.URL.Query().Get("reason"), 200)
		if reason == "" {
			reason = "imposed by an administrator"
		}
		b := g.imposeBan(key, "", reason, d)
		json.NewEncoder(w).Encode(b)
	case http.MethodDelete:
		if !g.LiftBan(key) {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "no ban on " + key})
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"lifted": key})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// checkBanKey accepts "ip:ADDRESS" or "identity:NAME".
func checkBanKey(key string) error {
	kind, who, ok := strings.Cut(key, ":")
	switch {
	case !ok || who == "":
		return errors.New("key: want ip:ADDRESS or identity:NAME")
	case kind == "ip":
		if net.ParseIP(who) == nil {
			return fmt.Errorf("key: %q is not an IP address", who)
		}
	case kind == "identity":
		if len(who) > 256 {
			return errors.New("key: identity too long")
		}
	default:
		return errors.New("key: want ip:ADDRESS or identity:NAME")
	}
	return nil
}

// admit decides a new TCP connection from ip, before any TLS work.
func (g *Gateway) admit(ip, src string) bool {
	now := g.now()
	if b, ok := g.bans.banned("ip:"+ip, now); ok {
		g.deny(Record{Source: src, Action: "connect", Reason: "address banned until " + b.Until.UTC().Format(time.RFC3339) + ": " + b.Reason, Rule: "ban"}, "banned")
		return false
	}
	lim := g.limits()
	g.mu.Lock()
	w := g.ipRate[ip]
	if w == nil {
		if len(g.ipRate) > maxTracked {
			clear(g.ipRate) // bounded memory under address-spraying storms
		}
		w = newWindow(lim.ConnectsPerMinutePerIP + 1)
		g.ipRate[ip] = w
	}
	n := w.add(now, time.Minute)
	open := g.perIP[ip]
	total := g.open
	if n <= lim.ConnectsPerMinutePerIP && open < lim.ConnectionsPerIP && total < lim.MaxConnections {
		g.perIP[ip]++
		g.open++
		g.mu.Unlock()
		return true
	}
	g.mu.Unlock()
	switch {
	case n > lim.ConnectsPerMinutePerIP:
		g.ban("ip:"+ip, src, fmt.Sprintf("%d connection attempts within a minute (limit %d)", n, lim.ConnectsPerMinutePerIP))
		g.deny(Record{Source: src, Action: "connect", Reason: "connection rate over limit", Rule: "limits.connects_per_minute_per_ip"}, "rate")
	case open >= lim.ConnectionsPerIP:
		g.deny(Record{Source: src, Action: "connect", Reason: fmt.Sprintf("%d connections already open from this address (limit %d)", open, lim.ConnectionsPerIP),
			Rule: "limits.connections_per_ip"}, "connections_per_ip")
	default:
		g.deny(Record{Source: src, Action: "connect", Reason: fmt.Sprintf("%d connections open (limit %d)", total, lim.MaxConnections),
			Rule: "limits.max_connections"}, "max_connections")
	}
	return false
}

// release forgets a closed connection from ip.
func (g *Gateway) release(ip string) {
	g.mu.Lock()
	if g.perIP[ip] > 1 {
		g.perIP[ip]--
	} else {
		delete(g.perIP, ip)
	}
	g.open--
	g.mu.Unlock()
}

// certRevoked refuses a certificate the CA issued and then revoked.
type certRevoked struct{ name, serial string }

func (e *certRevoked) Error() string {
	return fmt.Sprintf("certificate %s (serial %s) is revoked", e.name, e.serial)
}

// refusedIdentity is the identity of a refused certificate that the CA did
// issue (revoked, expired), for the audit log: the SOC needs to know which
// device was refused. A certificate from an unknown CA names nobody.
func refusedIdentity(err error) string {
	var rv *certRevoked
	var inv x509.CertificateInvalidError
	switch {
	case errors.As(err, &rv):
		return rv.name
	case errors.As(err, &inv) && inv.Cert != nil && inv.Reason == x509.Expired:
		return inv.Cert.Subject.CommonName
	}
	return ""
}

// tlsFailed records a refused handshake; it counts as a failed
// authentication of the address.
func (g *Gateway) tlsFailed(ip, src string, err error) {
	g.metrics.tlsFailures.Inc()
	reason := err.Error()
	switch {
	case strings.Contains(reason, "didn't provide a certificate"), strings.Contains(reason, "certificate required"):
		reason = "no client certificate"
	case strings.Contains(reason, "unknown authority"):
		reason = "client certificate from an unknown CA"
	case strings.Contains(reason, "revoked"):
		reason = "client certificate revoked"
	case strings.Contains(reason, "expired"):
		reason = "client certificate expired"
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(reason, "timeout"):
		g.deny(Record{Source: src, Action: "tls", Reason: "TLS handshake timed out", Rule: "limits.handshake_timeout"}, "tls_timeout")
		g.authFailed("ip:"+ip, src, "TLS handshake timed out")
		return
	case strings.Contains(reason, "EOF"), strings.Contains(reason, "reset by peer"), strings.Contains(reason, "broken pipe"),
		strings.Contains(reason, "use of closed"):
		// A probe or health check that connects and leaves: not an
		// authentication failure (the connect rate limit covers storms).
		g.deny(Record{Source: src, Action: "tls", Reason: "connection closed during the TLS handshake"}, "tls_closed")
		return
	default:
		reason, _ = capString(reason, 200)
	}
	g.deny(Record{Source: src, Identity: refusedIdentity(err), Action: "tls", Reason: reason, Rule: "tls"}, "tls")
	g.authFailed("ip:"+ip, src, reason)
}

// beforeConnect records a TLS client that ended without a CONNECT the
// broker could read: silence past the deadline, another packet first, or
// a malformed CONNECT.
func (g *Gateway) beforeConnect(gc *gwConn, src string, err error) {
	reason := "closed before sending CONNECT"
	if err != nil {
		msg := err.Error()
		switch {
		case errors.Is(err, ErrMalformed):
			m, _ := capString(msg, 200)
			reason = "malformed CONNECT: " + strings.TrimPrefix(m, "read connection: ")
		case strings.Contains(msg, "timeout"):
			reason = "no CONNECT within the handshake timeout"
		case strings.Contains(msg, "first packet"), strings.Contains(msg, "ProtocolViolation"), strings.Contains(msg, "protocol violation"):
			reason = "first packet was not CONNECT [MQTT-3.1.0-1]"
		case strings.Contains(msg, "EOF"), strings.Contains(msg, "use of closed"), strings.Contains(msg, "reset by peer"):
		default:
			m, _ := capString(msg, 200)
			reason = "CONNECT refused by the broker: " + m
		}
	}
	g.deny(Record{Identity: gc.identity, Source: src, Action: "connect", Reason: reason, Rule: "mqtt"}, "before_connect")
}

// authFailed counts a failed authentication and bans key after the limit.
func (g *Gateway) authFailed(key, src, why string) {
	now := g.now()
	lim := g.limits()
	g.mu.Lock()
	w := g.authFails[key]
	if w == nil {
		if len(g.authFails) > maxTracked {
			clear(g.authFails)
		}
		w = newWindow(lim.AuthFailuresBeforeBan)
		g.authFails[key] = w
	}
	n := w.add(now, 10*time.Minute)
	g.mu.Unlock()
	if n >= lim.AuthFailuresBeforeBan {
		g.ban(key, src, fmt.Sprintf("%d failed authentications within 10 minutes (last: %s)", n, why))
	}
}

// ban imposes a ban for the configured length (if not already banned).
func (g *Gateway) ban(key, src, reason string) {
	if _, ok := g.bans.banned(key, g.now()); ok {
		return
	}
	g.imposeBan(key, src, reason, g.limits().Ban.Seconds())
}

// imposeBan bans key for d, shares it with the other gateways, cuts off the
// clients it covers and audits it.
func (g *Gateway) imposeBan(key, src, reason string, d time.Duration) Ban {
	now := g.now()
	b := g.bans.add(key, reason, now, d)
	kind, who, _ := strings.Cut(key, ":")
	g.metrics.bans.WithLabelValues(kind, shortReason(reason)).Inc()
	r := Record{Source: src, Action: "ban", Verdict: "deny", Reason: reason + "; banned until " + b.Until.UTC().Format(time.RFC3339), Rule: "ban"}
	if kind == "identity" {
		r.Identity = who
	} else if src == "" {
		r.Source = who
	}
	g.audit.log(r)
	if g.cluster != nil {
		g.cluster.share(b)
	}
	g.applyBan(b)
	return b
}

// Ban imposes a ban (as an administrator would through the API): key is
// ip:ADDRESS or identity:NAME.
func (g *Gateway) Ban(key, reason string, d time.Duration) (Ban, error) {
	if err := checkBanKey(key); err != nil {
		return Ban{}, fmt.Errorf("gateway: ban: %w", err)
	}
	if d <= 0 {
		return Ban{}, errors.New("gateway: ban: want a positive duration")
	}
	return g.imposeBan(key, "", reason, d), nil
}

// LiftBan lifts a ban here and at the other gateways; it reports whether
// there was one here.
func (g *Gateway) LiftBan(key string) bool {
	ok := g.bans.lift(key)
	if g.cluster != nil {
		g.cluster.lift(key)
	}
	if ok {
		g.audit.log(Record{Action: "unban", Verdict: "info", Reason: "lifted by an administrator: " + key})
	}
	return ok
}

// applyBan disconnects the connected clients a ban covers.
func (g *Gateway) applyBan(b Ban) {
	kind, who, _ := strings.Cut(b.Key, ":")
	g.hook.forEach(func(cl *mqtt.Client, c *client) {
		if (kind == "identity" && c.identity == who) || (kind == "ip" && c.ip == who) {
			g.cutOff(cl, c, "banned: "+b.Reason, "ban", packets.ErrBanned, false)
		}
	})
}

func shortReason(r string) string {
	switch {
	case strings.Contains(r, "connection attempts"):
		return "connect_rate"
	case strings.Contains(r, "connects within"):
		return "flapping"
	case strings.Contains(r, "failed authentications"):
		return "auth_failures"
	case strings.Contains(r, "administrator"):
		return "admin"
	}
	return "other"
}

// deny logs a refusal and counts it.
func (g *Gateway) deny(r Record, metricReason string) {
	r.Verdict = "deny"
	g.audit.log(r)
	switch r.Action {
	case "connect", "tls":
		g.metrics.connections.WithLabelValues("deny", metricReason).Inc()
	case "publish":
		g.metrics.publishes.WithLabelValues("deny", metricReason).Inc()
	case "subscribe":
		g.metrics.subscribes.WithLabelValues("deny", metricReason).Inc()
	}
}

// Bans lists the bans in force.
func (g *Gateway) Bans() []Ban { return g.bans.list(g.now()) }

// serveHealth reports whether the gateway runs with the configuration its
// files hold: "degraded" when a file changed into something it refused
// (it keeps the last good one), or when the upstream broker or the NATS
// cluster is unreachable.
func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(g.Health())
}

// Health is what /healthz serves.
func (g *Gateway) Health() map[string]any {
	c := g.cur.Load()
	status := "ok"
	files := map[string]any{}
	for _, f := range c.files {
		e := map[string]any{"file": f.path, "loaded": f.loaded.UTC()}
		if f.err != "" {
			e["error"] = f.err
			status = "degraded"
		}
		files[f.name] = e
	}
	h := map[string]any{"status": status, "clients": atomic.LoadInt64(&g.srv.Info.ClientsConnected), "listen": g.Addr(), "config": files,
		"handshakes_in_progress": g.listener.slots.inUse()}
	if g.up != nil {
		up := g.up.health()
		if up["connected"] != true {
			h["status"] = "degraded"
		}
		h["upstream"] = up
	}
	if g.cluster != nil {
		cl := g.cluster.health()
		if cl["connected"] != true {
			h["status"] = "degraded"
		}
		h["cluster"] = cl
	}
	return h
}

// serveReload reloads the configuration files (POST), as SIGHUP does.
func (g *Gateway) serveReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := g.Reload(); err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	json.NewEncoder(w).Encode(g.Health())
}

package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
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
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/pki"
	"github.com/iomtguard/iomtguard/internal/policy"
)

// Gateway is a running (or ready) secure broker.
type Gateway struct {
	cfg              Config
	pol              *policy.Policy
	limits           policy.Limits
	tlsConfig        *tls.Config
	handshakeTimeout time.Duration
	passwords        map[string]string
	crl              *x509.RevocationList
	srv              *mqtt.Server
	listener         *tlsListener
	audit            *audit
	metrics          *metrics
	bans             *bans
	bridge           *bridge
	log              *slog.Logger
	now              func() time.Time

	mu        sync.Mutex
	perIP     map[string]int     // open connections per address
	ipRate    map[string]*window // connection attempts per address
	idRate    map[string]*window // connects per identity
	authFails map[string]*window // failed authentications per address and identity
	pubRate   map[string]*bucket // publishes per identity
	byteRate  map[string]*bucket // payload bytes per identity
	httpSrv   *http.Server
	httpLn    net.Listener
}

// Options are what New needs beyond the Config.
type Options struct {
	Logger *slog.Logger // operational log (default: discard)
	Audit  io.Writer    // overrides Config.Audit
	Now    func() time.Time
}

// New checks the configuration, loads the certificates, policy and
// password file, and prepares the broker. Nothing listens yet.
func New(cfg Config, opts Options) (*Gateway, error) {
	cfg.defaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: opts.Logger, now: opts.Now, perIP: map[string]int{}, ipRate: map[string]*window{},
		idRate: map[string]*window{}, authFails: map[string]*window{}, pubRate: map[string]*bucket{}, byteRate: map[string]*bucket{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	pol, err := policy.Load(cfg.Policy)
	if err != nil {
		return nil, err
	}
	if !pol.HasDevices() {
		return nil, fmt.Errorf("%w: %s has no devices section: the gateway denies by default, so no device could connect", ErrConfig, cfg.Policy)
	}
	g.pol, g.limits = pol, pol.Limits.Effective()
	g.handshakeTimeout = time.Duration(g.limits.HandshakeTimeout.V * float64(time.Second))
	if cfg.Passwords != "" {
		if g.passwords, err = ReadPasswords(cfg.Passwords); err != nil {
			return nil, err
		}
	}
	if g.tlsConfig, err = g.loadTLS(); err != nil {
		return nil, err
	}
	aw := opts.Audit
	if aw == nil {
		if cfg.Audit == "-" {
			aw = os.Stderr
		} else {
			f, err := os.OpenFile(cfg.Audit, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return nil, fmt.Errorf("%w: audit: %v", ErrConfig, err)
			}
			aw = f
		}
	}
	g.bans = newBans(statePath(cfg.State, "bans.json"))
	g.metrics = newMetrics(func() float64 { return float64(len(g.bans.list(g.now()))) }, func() float64 {
		if g.srv == nil {
			return 0
		}
		return float64(g.srv.Info.ClientsConnected)
	})
	det, err := detect.New(pol)
	if err != nil {
		return nil, err
	}
	g.audit = newAudit(aw)
	g.bridge = newBridge(det)

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(g.limits.MaxPacketSize)
	caps.MaximumClientWritesPending = 65536 // a busy subscriber (a nurse station) is not dropped at the first burst
	caps.MaximumSessionExpiryInterval = 3600
	g.srv = mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.DiscardHandler), InlineClient: false})
	if err := g.srv.AddHook(&hook{g: g}, nil); err != nil {
		return nil, err
	}
	g.listener = newTLSListener("mqtts", cfg.Listen, g)
	if err := g.srv.AddListener(g.listener); err != nil {
		return nil, fmt.Errorf("gateway: listen on %s: %w", cfg.Listen, err)
	}
	return g, nil
}

func statePath(dir, name string) string {
	if dir == "" {
		return ""
	}
	os.MkdirAll(dir, 0o700)
	return filepath.Join(dir, name)
}

// loadTLS builds the listener's TLS configuration: the gateway's
// certificate, client certificates required and verified against the CA,
// and the CRL checked when the PKI directory has one.
func (g *Gateway) loadTLS() (*tls.Config, error) {
	cert, key := g.cfg.Cert, g.cfg.Key
	if cert == "" {
		cert = filepath.Join(g.cfg.PKI, "gateway.crt")
	}
	if key == "" {
		key = filepath.Join(g.cfg.PKI, "gateway.key")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
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
	ca, _ := pki.ParseCertPEM(cab)
	if b, err := os.ReadFile(filepath.Join(g.cfg.PKI, "ca.crl")); err == nil {
		crl, err := parseCRL(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrConfig, filepath.Join(g.cfg.PKI, "ca.crl"), err)
		}
		if ca != nil {
			if err := crl.CheckSignatureFrom(ca); err != nil {
				return nil, fmt.Errorf("%w: ca.crl is not signed by ca.crt: %v", ErrConfig, err)
			}
		}
		g.crl = crl
	}
	min := uint16(tls.VersionTLS12)
	if g.cfg.MinTLS == "1.3" {
		min = tls.VersionTLS13
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   min,
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			if g.crl == nil || len(chains) == 0 {
				return nil
			}
			leaf := chains[0][0]
			for _, e := range g.crl.RevokedCertificateEntries {
				if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
					return fmt.Errorf("certificate %s (serial %s) is revoked", leaf.Subject.CommonName, leaf.SerialNumber.Text(16))
				}
			}
			return nil
		},
	}, nil
}

// parseCRL reads a CRL in PEM (as pki writes it) or DER.
func parseCRL(b []byte) (*x509.RevocationList, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	} else if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseRevocationList(b)
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
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"status": "ok", "clients": g.srv.Info.ClientsConnected, "listen": g.Addr()})
		})
		mux.HandleFunc("/bans", g.serveBans)
		g.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go g.httpSrv.Serve(ln)
	}
	if err := g.srv.Serve(); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.bridge.start(g, g.cfg.FindingsEvery)
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

// Close stops listening, disconnects the clients and flushes the audit log.
func (g *Gateway) Close() error {
	g.bridge.stop()
	err := g.srv.Close()
	if g.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		g.httpSrv.Shutdown(ctx)
		cancel()
	}
	g.bridge.report(g) // the last findings
	g.audit.log(Record{Action: "stop", Verdict: "info"})
	g.audit.close()
	return err
}

// serveBans lists bans (GET) and lifts one (DELETE ?key=ip:10.0.0.7).
func (g *Gateway) serveBans(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodGet:
		json.NewEncoder(w).Encode(g.bans.list(g.now()))
	case http.MethodDelete:
		key := r.URL.Query().Get("key")
		if !g.bans.lift(key) {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "no ban on " + key})
			return
		}
		g.audit.log(Record{Action: "unban", Verdict: "info", Reason: "lifted by an administrator: " + key})
		json.NewEncoder(w).Encode(map[string]string{"lifted": key})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// admit decides a new TCP connection from ip, before any TLS work.
func (g *Gateway) admit(ip, src string) bool {
	now := g.now()
	if b, ok := g.bans.banned("ip:"+ip, now); ok {
		g.deny(Record{Source: src, Action: "connect", Reason: "address banned until " + b.Until.UTC().Format(time.RFC3339) + ": " + b.Reason}, "banned")
		return false
	}
	g.mu.Lock()
	w := g.ipRate[ip]
	if w == nil {
		if len(g.ipRate) > 100000 {
			g.ipRate = map[string]*window{} // bounded memory under address-spraying storms
		}
		w = newWindow(g.limits.ConnectsPerMinutePerIP + 1)
		g.ipRate[ip] = w
	}
	n := w.add(now, time.Minute)
	open := g.perIP[ip]
	if n <= g.limits.ConnectsPerMinutePerIP && open < g.limits.ConnectionsPerIP {
		g.perIP[ip]++
		g.mu.Unlock()
		return true
	}
	g.mu.Unlock()
	if n > g.limits.ConnectsPerMinutePerIP {
		g.ban("ip:"+ip, src, fmt.Sprintf("%d connection attempts within a minute (limit %d)", n, g.limits.ConnectsPerMinutePerIP))
		g.deny(Record{Source: src, Action: "connect", Reason: "connection rate over limit"}, "rate")
	} else {
		g.deny(Record{Source: src, Action: "connect", Reason: fmt.Sprintf("%d connections already open from this address (limit %d)", open, g.limits.ConnectionsPerIP)}, "connections_per_ip")
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
	g.mu.Unlock()
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
	case errors.Is(err, context.DeadlineExceeded):
		reason = "TLS handshake timed out"
	case strings.Contains(reason, "EOF"), strings.Contains(reason, "reset by peer"), strings.Contains(reason, "broken pipe"):
		// A probe or health check that connects and leaves: not an
		// authentication failure (the connect rate limit covers storms).
		g.deny(Record{Source: src, Action: "tls", Reason: "connection closed during the TLS handshake"}, "tls_closed")
		return
	}
	g.deny(Record{Source: src, Action: "tls", Reason: reason}, "tls")
	g.authFailed("ip:"+ip, src, reason)
}

// authFailed counts a failed authentication and bans key after the limit.
func (g *Gateway) authFailed(key, src, why string) {
	now := g.now()
	g.mu.Lock()
	w := g.authFails[key]
	if w == nil {
		if len(g.authFails) > 100000 {
			g.authFails = map[string]*window{}
		}
		w = newWindow(g.limits.AuthFailuresBeforeBan)
		g.authFails[key] = w
	}
	n := w.add(now, 10*time.Minute)
	g.mu.Unlock()
	if n >= g.limits.AuthFailuresBeforeBan {
		g.ban(key, src, fmt.Sprintf("%d failed authentications within 10 minutes (last: %s)", n, why))
	}
}

// ban imposes a ban for the configured length (if not already banned).
func (g *Gateway) ban(key, src, reason string) {
	now := g.now()
	if _, ok := g.bans.banned(key, now); ok {
		return
	}
	d := time.Duration(g.limits.Ban.V * float64(time.Second))
	b := g.bans.add(key, reason, now, d)
	kind, who, _ := strings.Cut(key, ":")
	g.metrics.bans.WithLabelValues(kind, shortReason(reason)).Inc()
	r := Record{Source: src, Action: "ban", Verdict: "deny", Reason: reason + "; banned until " + b.Until.UTC().Format(time.RFC3339)}
	if kind == "identity" {
		r.Identity = who
	}
	g.audit.log(r)
	g.log.Warn("ban", "key", key, "until", b.Until, "reason", reason)
}

func shortReason(r string) string {
	switch {
	case strings.Contains(r, "connection attempts"):
		return "connect_rate"
	case strings.Contains(r, "connects within"):
		return "flapping"
	case strings.Contains(r, "failed authentications"):
		return "auth_failures"
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

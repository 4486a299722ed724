package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// cluster makes several gateways act as one through a JetStream key-value
// bucket: a ban imposed at one gateway (by a rate limit, failed
// authentications or an administrator) and a certificate revoked at one
// (its CRL changed) are written to the bucket; every gateway watches it and
// applies what it sees within a second. Keys: "ban.B64(KEY)" holds a Ban,
// "revoked.SERIAL" holds a revocation.
type cluster struct {
	g   *Gateway
	nc  *nats.Conn
	kv  jetstream.KeyValue
	w   jetstream.KeyWatcher
	ctx context.Context
	end context.CancelFunc

	mu      sync.Mutex
	revoked map[string]revocation
	shared  map[string]bool // serials this gateway has written
	lastErr atomic.Value
	wg      sync.WaitGroup
}

type revocation struct {
	Serial   string    `json:"serial"`
	Identity string    `json:"identity,omitempty"`
	At       time.Time `json:"at"`
	By       string    `json:"by"` // the gateway that shared it
}

func banKey(key string) string { return "ban." + base64.RawURLEncoding.EncodeToString([]byte(key)) }

// natsTLS builds the client TLS configuration for NATS: the configured
// files, or for a tls:// URL the PKI's CA and gateway certificate.
func natsTLS(cfg *Config) (*tls.Config, error) {
	ca, cert, key := cfg.NATSCA, cfg.NATSCert, cfg.NATSKey
	u, _ := url.Parse(cfg.NATS)
	if u.Scheme == "tls" && cfg.PKI != "" {
		if ca == "" {
			ca = filepath.Join(cfg.PKI, "ca.crt")
		}
		if cert == "" {
			cert, key = filepath.Join(cfg.PKI, "gateway.crt"), filepath.Join(cfg.PKI, "gateway.key")
		}
	}
	if ca == "" && cert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("%w: nats_ca: %v", ErrConfig, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%w: nats_ca: %s holds no certificate", ErrConfig, ca)
		}
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("%w: nats_cert: %v", ErrConfig, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

func newCluster(g *Gateway) (*cluster, error) {
	tc, err := natsTLS(&g.cfg)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	c := &cluster{g: g, revoked: map[string]revocation{}, shared: map[string]bool{}}
	opts := []nats.Option{nats.Name("iomtguard-gateway " + host + " " + g.Addr()), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				c.lastErr.Store(err.Error())
			}
			g.log.Warn("gateway: NATS disconnected; bans and revocations are applied locally until it is back", "error", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			c.lastErr.Store("")
			g.log.Info("gateway: NATS reconnected")
		})}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	if c.nc, err = nats.Connect(g.cfg.NATS, opts...); err != nil {
		return nil, fmt.Errorf("gateway: nats %s: %w", g.cfg.NATS, err)
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		c.nc.Close()
		return nil, fmt.Errorf("gateway: nats: %w", err)
	}
	c.ctx, c.end = context.WithCancel(context.Background())
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	c.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: g.cfg.NATSBucket, History: 1,
		Description: "iomtguard gateway bans and revocations", Storage: jetstream.FileStorage})
	if err != nil {
		c.nc.Close()
		return nil, fmt.Errorf("gateway: nats: key-value bucket %s: %w", g.cfg.NATSBucket, err)
	}
	if c.w, err = c.kv.WatchAll(c.ctx); err != nil {
		c.nc.Close()
		return nil, fmt.Errorf("gateway: nats: watch %s: %w", g.cfg.NATSBucket, err)
	}
	// Apply what the bucket holds before serving.
	for e := range c.w.Updates() {
		if e == nil {
			break
		}
		c.apply(e, false)
	}
	c.wg.Add(2)
	go c.loop()
	go c.janitor()
	// Share what this gateway already holds.
	for _, b := range g.bans.list(g.now()) {
		c.share(b)
	}
	c.shareCRL()
	return c, nil
}

// loop applies the bucket's changes as they come.
func (c *cluster) loop() {
	defer c.wg.Done()
	for e := range c.w.Updates() {
		if e != nil {
			c.apply(e, true)
		}
	}
}

// apply takes one entry of the bucket into this gateway.
func (c *cluster) apply(e jetstream.KeyValueEntry, live bool) {
	g := c.g
	k := e.Key()
	switch {
	case strings.HasPrefix(k, "ban."):
		raw, err := base64.RawURLEncoding.DecodeString(k[4:])
		if err != nil || checkBanKey(string(raw)) != nil {
			return
		}
		key := string(raw)
		if e.Operation() != jetstream.KeyValuePut {
			if g.bans.lift(key) && live {
				g.audit.log(Record{Action: "unban", Verdict: "info", Reason: "lifted at another gateway: " + key})
			}
			return
		}
		var b Ban
		if json.Unmarshal(e.Value(), &b) != nil || b.Key != key || !b.Until.After(g.now()) {
			return
		}
		if cur, ok := g.bans.banned(key, g.now()); ok && !b.Until.After(cur.Until) {
			return
		}
		g.bans.put(b)
		if live {
			g.audit.log(Record{Action: "ban", Verdict: "deny", Reason: "shared by another gateway: " + b.Reason + "; banned until " + b.Until.UTC().Format(time.RFC3339), Rule: "ban"})
		}
		g.applyBan(b)
	case strings.HasPrefix(k, "revoked."):
		if e.Operation() != jetstream.KeyValuePut {
			return // a revocation is never undone through the bucket
		}
		var r revocation
		if json.Unmarshal(e.Value(), &r) != nil || r.Serial != k[len("revoked."):] {
			return
		}
		c.mu.Lock()
		_, had := c.revoked[r.Serial]
		c.revoked[r.Serial] = r
		c.mu.Unlock()
		if !had && live && !g.cur.Load().revoked[r.Serial] {
			g.audit.log(Record{Identity: r.Identity, Action: "revoke", Verdict: "info", Reason: "certificate serial " + r.Serial + " revoked at " + r.By})
			g.refreshRevocations()
		}
	}
}

// share writes a ban to the bucket.
func (c *cluster) share(b Ban) {
	data, _ := json.Marshal(b)
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	if _, err := c.kv.Put(ctx, banKey(b.Key), data); err != nil {
		c.lastErr.Store(err.Error())
		c.g.log.Warn("gateway: sharing a ban through NATS", "key", b.Key, "error", err)
	}
}

// lift deletes a ban from the bucket.
func (c *cluster) lift(key string) {
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	if err := c.kv.Delete(ctx, banKey(key)); err != nil {
		c.lastErr.Store(err.Error())
	}
}

// shareCRL writes the CRL's revocations the bucket lacks.
func (c *cluster) shareCRL() {
	crl := c.g.cur.Load().crl
	if crl == nil {
		return
	}
	host, _ := os.Hostname()
	for _, e := range crl.RevokedCertificateEntries {
		s := e.SerialNumber.Text(16)
		c.mu.Lock()
		_, known := c.revoked[s]
		done := c.shared[s]
		c.shared[s] = true
		c.mu.Unlock()
		if known || done {
			continue
		}
		data, _ := json.Marshal(revocation{Serial: s, At: e.RevocationTime, By: host + " " + c.g.Addr()})
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		if _, err := c.kv.Create(ctx, "revoked."+s, data); err != nil && !strings.Contains(err.Error(), "exists") {
			c.lastErr.Store(err.Error())
		}
		cancel()
	}
}

// revokedSerials lists the serials revoked anywhere in the cluster.
func (c *cluster) revokedSerials() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.revoked))
	for s := range c.revoked {
		out[s] = true
	}
	return out
}

// janitor deletes expired bans from the bucket and shares new CRL entries.
func (c *cluster) janitor() {
	defer c.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.shareCRL()
		if n++; n%60 != 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		keys, err := c.kv.ListKeysFiltered(ctx, "ban.>")
		if err == nil {
			for k := range keys.Keys() {
				e, err := c.kv.Get(ctx, k)
				if err != nil {
					continue
				}
				var b Ban
				if json.Unmarshal(e.Value(), &b) == nil && !b.Until.After(c.g.now()) {
					c.kv.Delete(ctx, k)
				}
			}
		}
		cancel()
	}
}

func (c *cluster) health() map[string]any {
	h := map[string]any{"url": c.g.cfg.NATS, "connected": c.nc.IsConnected(), "bucket": c.g.cfg.NATSBucket}
	if e, _ := c.lastErr.Load().(string); e != "" {
		h["last_error"] = e
	}
	return h
}

// close ends the connection (which ends the watcher) without waiting on a
// server that may be gone.
func (c *cluster) close() {
	c.end()
	c.nc.Close()
	c.wg.Wait()
}

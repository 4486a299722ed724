package gateway

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/pki"
	"github.com/iomtguard/iomtguard/internal/policy"
)

// config is the part of the gateway's configuration that changes while it
// runs: the policy (and its limits), the password file, the CRL and the
// gateway's own certificate (renewed with pki renew). A
// reload builds a new one and swaps it in whole; a file that changed into
// something invalid keeps its last good content, with the error shown in
// /healthz and the log.
type config struct {
	pol     *policy.Policy
	lim     policy.Limits
	pw      map[string]string // nil: no password file
	crl     *x509.RevocationList
	revoked map[string]bool  // serial (hex) -> revoked, from the CRL and shared revocations
	cert    *tls.Certificate // served to clients
	files   []fileState
}

// fileState is one watched file: what is in force and what the last read
// of it found.
type fileState struct {
	name, path string
	sum        [32]byte  // SHA-256 of the content in force
	stamp      string    // size and modification time last seen
	loaded     time.Time // when the content in force was read
	err        string    // why the file's current content was refused
}

// stamp is a cheap change check: size and modification time.
func stamp(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d/%d", st.Size(), st.ModTime().UnixNano())
}

func (g *Gateway) crlPath() string { return filepath.Join(g.cfg.PKI, "ca.crl") }

// loadConfig reads the files. With no previous configuration (start-up)
// any error is returned; on a reload a refused file keeps its previous
// content and the errors are returned together.
func (g *Gateway) loadConfig(prev *config) (*config, error) {
	next := &config{revoked: map[string]bool{}}
	if prev != nil {
		*next = *prev
		next.files = append([]fileState(nil), prev.files...)
	}
	var errs []error
	state := func(name, path string) *fileState {
		for i := range next.files {
			if next.files[i].name == name {
				return &next.files[i]
			}
		}
		next.files = append(next.files, fileState{name: name, path: path})
		return &next.files[len(next.files)-1]
	}
	read := func(fs *fileState, optional bool, apply func([]byte) error) {
		fs.stamp = stamp(fs.path)
		b, err := os.ReadFile(fs.path)
		switch {
		case err != nil && optional && os.IsNotExist(err) && fs.sum == ([32]byte{}):
			if prev == nil {
				err = apply(nil)
			} else {
				err = nil
			}
			if err == nil {
				fs.err = ""
				return
			}
		case err != nil && optional && os.IsNotExist(err):
			// Deleting the CRL must not undo revocations: fail closed.
			err = fmt.Errorf("%w: %s was removed: the revocations it held stay in force", ErrConfig, fs.path)
		}
		if err != nil {
			fs.err = err.Error()
			errs = append(errs, err)
			return
		}
		sum := sha256.Sum256(b)
		if prev != nil && sum == fs.sum {
			fs.err = ""
			return
		}
		if err := apply(b); err != nil {
			fs.err = err.Error()
			errs = append(errs, err)
			return
		}
		fs.sum, fs.err, fs.loaded = sum, "", g.now()
	}

	read(state("policy", g.cfg.Policy), false, func(b []byte) error {
		pol, err := policy.Parse(g.cfg.Policy, bytes.NewReader(b))
		if err != nil {
			return err
		}
		if !pol.HasDevices() {
			return fmt.Errorf("%w: %s has no devices section: the gateway denies by default, so no device could connect", ErrConfig, g.cfg.Policy)
		}
		if err := detect.Check(pol); err != nil {
			return err
		}
		lim := pol.Limits.Effective()
		if prev != nil {
			if fixed := restartOnly(prev.lim, lim); fixed != "" {
				g.log.Warn("gateway: reload: these limits take effect at the next restart", "limits", fixed)
			}
		}
		next.pol, next.lim = pol, lim
		return nil
	})
	if g.cfg.Passwords != "" {
		read(state("passwords", g.cfg.Passwords), false, func(b []byte) error {
			pw, err := parsePasswords(g.cfg.Passwords, bytes.NewReader(b))
			if err != nil {
				return err
			}
			next.pw = pw
			return nil
		})
	}
	certFile, keyFile := g.certFiles()
	read(state("certificate", certFile), false, func(b []byte) error {
		kb, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("%w: certificate key: %v", ErrConfig, err)
		}
		pair, err := tls.X509KeyPair(b, kb)
		if err != nil {
			// A renewal writes the key, then the certificate: the next
			// check, a second later, sees both.
			return fmt.Errorf("%w: %s and %s: %v", ErrConfig, certFile, keyFile, err)
		}
		next.cert = &pair
		return nil
	})
	if g.cfg.PKI != "" {
		read(state("crl", g.crlPath()), true, func(b []byte) error {
			if b == nil {
				next.crl = nil
				return nil
			}
			crl, err := pki.ParseCRL(b)
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrConfig, g.crlPath(), err)
			}
			if g.ca != nil {
				if err := crl.CheckSignatureFrom(g.ca); err != nil {
					return fmt.Errorf("%w: %s is not signed by ca.crt: %v", ErrConfig, g.crlPath(), err)
				}
			}
			if next.crl != nil && crl.Number != nil && next.crl.Number != nil && crl.Number.Cmp(next.crl.Number) < 0 {
				return fmt.Errorf("%w: %s: CRL number %s is older than the one in force (%s)", ErrConfig, g.crlPath(), crl.Number, next.crl.Number)
			}
			next.crl = crl
			return nil
		})
	}
	next.revoked = map[string]bool{}
	if next.crl != nil {
		next.revoked = pki.RevokedSerials(next.crl)
	}
	if g.cluster != nil {
		for s := range g.cluster.revokedSerials() {
			next.revoked[s] = true
		}
	}
	if len(errs) > 0 {
		if prev == nil {
			return nil, errors.Join(errs...)
		}
		return next, errors.Join(errs...)
	}
	return next, nil
}

// restartOnly names the limits that changed but are the broker's own
// buffers, fixed at start.
func restartOnly(a, b policy.Limits) string {
	var out []string
	if a.MaxPacketSize != b.MaxPacketSize {
		out = append(out, "max_packet_size")
	}
	if a.MaxQueuedMessages != b.MaxQueuedMessages {
		out = append(out, "max_queued_messages")
	}
	if a.MaxInflight != b.MaxInflight {
		out = append(out, "max_inflight")
	}
	if a.MaxTopicAliases != b.MaxTopicAliases {
		out = append(out, "max_topic_aliases")
	}
	if a.MaxSessionExpiry != b.MaxSessionExpiry {
		out = append(out, "max_session_expiry")
	}
	return strings.Join(out, ", ")
}

// watch reloads when a file changes (checked every WatchInterval).
func (g *Gateway) watch() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			changed := false
			for _, f := range g.cur.Load().files {
				if stamp(f.path) != f.stamp {
					changed = true
				}
			}
			if changed {
				g.Reload()
			}
		}
	}
}

// Reload reads the policy, the password file and the CRL again (SIGHUP, a
// file change, POST /reload) and applies them to the sessions already
// open: a revoked or removed identity is disconnected and its session
// dropped, a removed right takes its subscriptions away, a changed
// password ends the sessions opened with the old one. A file that does not
// validate keeps its previous content; the error is returned, logged and
// shown in /healthz.
func (g *Gateway) Reload() error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	prev := g.cur.Load()
	next, err := g.loadConfig(prev)
	if err != nil {
		g.log.Error("gateway: reload: kept the previous configuration of the files that failed", "error", err)
		g.audit.log(Record{Action: "reload", Verdict: "info", Reason: "refused: " + err.Error()})
	}
	if next == nil {
		return err
	}
	g.cur.Store(next)
	g.listener.slots.setLimits(next.lim.MaxHandshakes, next.lim.HandshakesPerIP, next.lim.HandshakesPerSubnet)
	if g.cluster != nil && next.crl != prev.crl {
		g.cluster.shareCRL()
	}
	changed := g.apply(prev, next)
	if changed != "" {
		g.audit.log(Record{Action: "reload", Verdict: "info", Reason: changed})
		g.log.Info("gateway: configuration reloaded", "changed", changed)
	}
	return err
}

// refreshRevocations applies revocations shared by the other gateways.
func (g *Gateway) refreshRevocations() {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	prev := g.cur.Load()
	next := *prev
	next.revoked = map[string]bool{}
	for s := range prev.revoked {
		next.revoked[s] = true
	}
	if g.cluster != nil {
		for s := range g.cluster.revokedSerials() {
			next.revoked[s] = true
		}
	}
	g.cur.Store(&next)
	g.apply(prev, &next)
}

// apply brings the open sessions (and the persistent ones) in line with a
// new configuration; it returns what changed, in words.
func (g *Gateway) apply(prev, next *config) string {
	var what []string
	for i, f := range next.files {
		if i < len(prev.files) && f.sum != prev.files[i].sum {
			what = append(what, f.name+" "+f.path)
		}
	}
	if len(what) == 0 && len(next.revoked) == len(prev.revoked) {
		return ""
	}
	lim := next.lim
	var cut, pruned atomic.Int64
	g.hook.forEach(func(cl *mqtt.Client, c *client) {
		switch {
		case c.serial != nil && next.revoked[c.serial.Text(16)]:
			g.cutOff(cl, c, "client certificate revoked", "crl", packets.ErrNotAuthorized, true)
			cut.Add(1)
			return
		default:
			r, known := rightsOf(next, c.identity)
			if !known {
				g.cutOff(cl, c, "identity removed from the policy", "devices", packets.ErrNotAuthorized, true)
				cut.Add(1)
				return
			}
			if next.pw != nil || prev.pw != nil {
				if h, ok := next.pw[c.identity]; next.pw != nil && (!ok || h != c.pwHash) {
					g.cutOff(cl, c, "password changed or removed", "passwords", packets.ErrNotAuthorized, false)
					cut.Add(1)
					return
				}
			}
			c.rights.Store(r)
			c.mu.Lock()
			c.pubs.rate, c.bytes.rate = float64(lim.PublishesPerSecond), float64(lim.BytesPerSecond)
			c.mu.Unlock()
			pruned.Add(int64(g.prune(cl, c.identity, r, &lim)))
			if atomic.LoadUint32(&cl.Properties.Will.Flag) == 1 {
				w := cl.Properties.Will
				if v := decidePublish(next.pol, &lim, r, w.TopicName, w.Retain, w.Payload); !v.ok() {
					atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
					g.deny(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "publish", Topic: w.TopicName,
						Reason: "will message withdrawn on reload: " + v.reason, Rule: v.rule}, "will")
				}
			}
		}
	})
	// Sessions kept for clients that are not connected.
	for _, cl := range g.srv.Clients.GetAll() {
		if g.hook.get(cl) != nil {
			continue
		}
		gc := conn(cl)
		if gc == nil {
			continue
		}
		r, known := rightsOf(next, gc.identity)
		if !known || g.revoked(gc.leaf) {
			g.dropSession(cl)
			continue
		}
		pruned.Add(int64(g.prune(cl, gc.identity, r, &lim)))
	}
	out := "reloaded"
	if len(what) > 0 {
		out += " " + strings.Join(what, ", ")
	}
	if len(next.revoked) != len(prev.revoked) {
		out += fmt.Sprintf("; %d certificates revoked", len(next.revoked))
	}
	return out + fmt.Sprintf("; %d sessions cut off, %d subscriptions removed", cut.Load(), pruned.Load())
}

// prune removes the subscriptions and the held QoS messages that the
// rights r no longer allow; it returns how many subscriptions it removed.
func (g *Gateway) prune(cl *mqtt.Client, identity string, r *rights, lim *policy.Limits) int {
	n := 0
	for f := range cl.State.Subscriptions.GetAll() {
		if v := decideSubscribe(lim, r, f); !v.ok() {
			if g.srv.Topics.Unsubscribe(f, cl.ID) {
				atomic.AddInt64(&g.srv.Info.Subscriptions, -1)
			}
			cl.State.Subscriptions.Delete(f)
			g.upstreamUnsubscribe(cl.ID, f)
			g.deny(Record{Identity: identity, ClientID: cl.ID, Action: "subscribe", Topic: f, Reason: "subscription removed on reload: " + v.reason, Rule: v.rule}, "reload")
			n++
		}
	}
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Publish && !r.mayReceive(pk.TopicName) {
			cl.State.Inflight.Delete(pk.PacketID)
		}
	}
	return n
}

// cutOff ends a connected client's session for a reason the audit log
// keeps; its will is withdrawn first. drop also deletes a persistent
// session, so that nothing of it survives.
func (g *Gateway) cutOff(cl *mqtt.Client, c *client, reason, rule string, code packets.Code, drop bool) {
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	g.deny(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "disconnect", Reason: reason, Rule: rule}, "cut_off")
	g.metrics.cutOffs.Inc()
	if code == packets.ErrNotAuthorized {
		code = packets.ErrAdministrativeAction
	}
	g.srv.DisconnectClient(cl, code)
	if drop {
		g.dropSession(cl)
	}
}

// dropSession deletes a session with its subscriptions and held messages.
func (g *Gateway) dropSession(cl *mqtt.Client) {
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	for f := range cl.State.Subscriptions.GetAll() {
		g.upstreamUnsubscribe(cl.ID, f)
	}
	g.srv.UnsubscribeClient(cl)
	cl.ClearInflights()
	if cur, ok := g.srv.Clients.Get(cl.ID); ok && cur == cl {
		g.srv.Clients.Delete(cl.ID)
	}
}

package hub_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/hub"
	"github.com/iomtguard/iomtguard/internal/pki"
)

// TestHubSecurity: with --pki the hub's NATS takes TLS connections with a
// certificate of its PKI only; a sensor publishes under its own subjects
// and not another's; other certificates of the PKI can do nothing; no
// certificate, another CA's, a revoked one, or no TLS at all: refused.
func TestHubSecurity(t *testing.T) {
	dir := issuePKI(t, "127.0.0.1", "sensor.icu.s1", "sensor.icu.s2", "bed1-ecg", "sensor.icu.old", "sensor.icu.norole")
	if err := pki.Revoke(dir, "sensor.icu.old", "key-compromise", pki.Options{}); err != nil {
		t.Fatal(err)
	}
	other := issuePKI(t, "127.0.0.1", "sensor.icu.s1") // another CA's
	h := startSecured(t, dir, "127.0.0.1:0")
	tc, _ := hub.ClientTLS(dir, "hub.a")
	perms, err := (&hub.Security{Dir: dir}).Permissions()
	if err != nil {
		t.Fatal(err)
	}
	if p := perms["sensor.icu.s1"]; len(p) != 1 || p[0] != "iomtguard.sensor.icu.s1.>" || perms["bed1-ecg"] != nil || perms["hub.a"][0] != "*" || perms["sensor.icu.norole"] != nil {
		t.Errorf("permissions: %v", perms)
	}

	// Another sensor listening for everyone's replies (the hub's fetched
	// messages, the stream's acknowledgements): refused, it hears nothing.
	s2tc, _ := hub.ClientTLS(dir, "sensor.icu.s2")
	violations := make(chan error, 10)
	spy, err := nats.Connect(h.URL(), nats.Secure(s2tc), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	heard := make(chan *nats.Msg, 100)
	for _, subj := range []string{"_INBOX.>", "_INBOX.hub.a.>", ">", "iomtguard.>"} {
		spy.ChanSubscribe(subj, heard)
	}
	spy.Flush()

	// The sensor, with its own certificate: stored.
	stc, _ := hub.ClientTLS(dir, "sensor.icu.s1")
	s, err := hub.NewSensor(hub.SensorOptions{URL: h.URL(), Site: "icu", Sensor: "s1", TLS: stc})
	if err != nil {
		t.Fatal(err)
	}
	s.Minute(1, analysis.New(analysis.Options{}).State())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, h)
	select {
	case m := <-heard:
		t.Errorf("sensor.icu.s2 heard %s", m.Subject)
	default:
	}
	select {
	case err := <-violations:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("the spy's subscription: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("the spy's subscriptions were not refused")
	}

	// The same certificate publishing as another sensor: refused by the
	// server (no acknowledgement), nothing stored.
	nc, err := nats.Connect(h.URL(), nats.Secure(stc), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = js.Publish(pctx, hub.Subject("icu", "s2", hub.KindMinute), []byte("forged"))
	pcancel()
	if err == nil {
		t.Error("sensor.icu.s1 published under icu/s2")
	}
	nc.Close()
	// A device's certificate of the same PKI: connects, may publish nothing.
	dtc, _ := hub.ClientTLS(dir, "bed1-ecg")
	if nc, err := nats.Connect(h.URL(), nats.Secure(dtc), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})); err == nil {
		js, _ := jetstream.New(nc)
		pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
		if _, err := js.Publish(pctx, hub.Subject("icu", "s1", hub.KindMinute), []byte("forged")); err == nil {
			t.Error("a device certificate published as a sensor")
		}
		pcancel()
		nc.Close()
	}
	runs, _ := h.DB().Intervals()
	if len(runs) != 1 || runs[0].Source != "icu/s1" || runs[0].Stored != 1 {
		t.Errorf("stored: %+v (stats %+v)", runs, h.Stats())
	}

	// Refused connections.
	pool := stc.RootCAs
	otc, _ := hub.ClientTLS(other, "sensor.icu.s1")
	otc.RootCAs = pool // trusts the hub, but its certificate is another CA's
	rtc, _ := hub.ClientTLS(dir, "sensor.icu.old")
	refused := func(opt nats.Option) error {
		nc, err := nats.Connect(h.URL(), opt, nats.Timeout(3*time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		// Some refusals come after the handshake: the first request fails.
		_, err = nc.Request("$JS.API.INFO", nil, 2*time.Second)
		return err
	}
	if err := refused(nats.Secure(tc)); err != nil {
		t.Fatalf("the hub's own certificate: %v", err)
	}
	for name, opt := range map[string]nats.Option{
		"no certificate": nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		"another CA":     nats.Secure(otc),
		"revoked":        nats.Secure(rtc),
		"no TLS":         nats.Name("plain"),
	} {
		if err := refused(opt); err == nil {
			t.Errorf("%s: connected", name)
		} else {
			t.Logf("%s: refused: %v", name, err)
		}
	}
}

// TestNATSUsersParse: the users block for an external NATS cluster is
// what nats-server reads: each certificate's user with its permissions; a
// revoked certificate that was not renewed has no user.
func TestNATSUsersParse(t *testing.T) {
	dir := t.TempDir()
	pki.Init(dir, pki.Options{})
	for _, n := range []string{"hub.main", "sensor.icu.s1", "bed1-ecg", "sensor.icu.old"} {
		if _, err := pki.Issue(dir, n, pki.Options{Role: roleOf(n)}); err != nil {
			t.Fatal(err)
		}
	}
	pki.Revoke(dir, "sensor.icu.old", "key-compromise", pki.Options{})
	block, err := (&hub.Security{Dir: dir}).NATSUsers()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	os.WriteFile(conf, []byte("listen: 127.0.0.1:-1\n"+block), 0o644)
	o, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("%v\n%s", err, block)
	}
	users := map[string]*server.User{}
	for _, u := range o.Users {
		users[strings.TrimPrefix(u.Username, "iomtguard://device/")] = u
	}
	if len(users) != 3 || users["sensor.icu.old"] != nil {
		t.Fatalf("users: %v\n%s", users, block)
	}
	if p := users["sensor.icu.s1"].Permissions; p == nil || p.Publish.Allow[0] != "iomtguard.sensor.icu.s1.>" || p.Subscribe.Allow[0] != "_INBOX.sensor.icu.s1.>" {
		t.Errorf("sensor: %+v", p)
	}
	if users["hub.main"].Permissions != nil || users["bed1-ecg"].Permissions.Publish.Deny[0] != ">" {
		t.Errorf("hub %+v, device %+v", users["hub.main"].Permissions, users["bed1-ecg"].Permissions)
	}
}

// TestHubPKIEverywhere: a hub with a PKI listening on every interface, its
// certificate naming only a host name (as the command's example issues
// it), reaches its own server and stores a sensor's minute.
func TestHubPKIEverywhere(t *testing.T) {
	dir := issuePKI(t, "hub.hospital.example", "sensor.icu.s1")
	h := startSecured(t, dir, "0.0.0.0:0")
	stc, _ := hub.ClientTLS(dir, "sensor.icu.s1")
	stc.ServerName = "hub.hospital.example"
	port := h.URL()[strings.LastIndex(h.URL(), ":")+1:]
	s, err := hub.NewSensor(hub.SensorOptions{URL: "tls://127.0.0.1:" + port, Site: "icu", Sensor: "s1", TLS: stc})
	if err != nil {
		t.Fatal(err)
	}
	s.Minute(1, analysis.New(analysis.Options{}).State())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, h)
	if runs, _ := h.DB().Intervals(); len(runs) != 1 || runs[0].Stored != 1 {
		t.Errorf("stored: %+v", runs)
	}
}

// roleOf is the role a test issues a certificate with: sensor.* and hub.*
// get theirs, except one named to show that the name alone gives nothing.
func roleOf(name string) string {
	switch {
	case strings.HasSuffix(name, ".norole"):
		return ""
	case strings.HasPrefix(name, "sensor."):
		return "sensor"
	case strings.HasPrefix(name, "hub."):
		return "hub"
	}
	return ""
}

// TestHubRevocation: a sensor's certificate renewed (the old one revoked as
// superseded, the name kept): the old one is refused at the handshake, the
// new one connects; a CRL that cannot be read refuses everyone (fail
// closed) until it is whole again.
func TestHubRevocation(t *testing.T) {
	dir := issuePKI(t, "127.0.0.1", "sensor.icu.s1")
	r, err := pki.Renew(dir, "sensor.icu.s1", pki.Options{}, false)
	if err != nil || !r.Revoked {
		t.Fatalf("renew: %v %+v", err, r)
	}
	oldTLS, err := tls.LoadX509KeyPair(r.MovedTo+".crt", r.MovedTo+".key")
	if err != nil {
		t.Fatal(err)
	}
	h := startSecured(t, dir, "127.0.0.1:0")
	newTLS, _ := hub.ClientTLS(dir, "sensor.icu.s1")
	old := newTLS.Clone()
	old.Certificates = []tls.Certificate{oldTLS}
	try := func(c *tls.Config) error {
		nc, err := nats.Connect(h.URL(), nats.Secure(c), nats.Timeout(3*time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		return nc.Flush()
	}
	if err := try(old); err == nil {
		t.Error("the superseded certificate connected")
	}
	if err := try(newTLS); err != nil {
		t.Errorf("the renewed certificate: %v", err)
	}
	crl := filepath.Join(dir, "ca.crl")
	good, _ := os.ReadFile(crl)
	os.WriteFile(crl, []byte("not a CRL"), 0o644)
	later := time.Now().Add(time.Second)
	os.Chtimes(crl, later, later)
	if err := try(newTLS); err == nil {
		t.Error("with a damaged CRL a certificate connected")
	}
	os.WriteFile(crl, good, 0o644)
	later = later.Add(time.Second)
	os.Chtimes(crl, later, later)
	if err := try(newTLS); err != nil {
		t.Errorf("the CRL whole again: %v", err)
	}
}

// TestHubDropsRevokedConnection: a sensor connected when its certificate
// is revoked is disconnected within seconds, and cannot connect again.
func TestHubDropsRevokedConnection(t *testing.T) {
	dir := issuePKI(t, "127.0.0.1", "sensor.icu.s1")
	h := startSecured(t, dir, "127.0.0.1:0")
	stc, _ := hub.ClientTLS(dir, "sensor.icu.s1")
	closed := make(chan struct{})
	nc, err := nats.Connect(h.URL(), nats.Secure(stc), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := pki.Revoke(dir, "sensor.icu.s1", "key-compromise", pki.Options{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked sensor's connection stayed open")
	}
	if nc2, err := nats.Connect(h.URL(), nats.Secure(stc), nats.Timeout(3*time.Second)); err == nil {
		err = nc2.Flush()
		nc2.Close()
		if err == nil {
			t.Error("the revoked certificate connected again")
		}
	}
}

// issuePKI makes a PKI in a temporary directory: the hub's server
// certificate for host, hub.a with the hub role, and names, each with the
// role roleOf gives it.
func issuePKI(t *testing.T, host string, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := pki.Init(dir, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Issue(dir, "hub", pki.Options{Server: true, Hosts: []string{host}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range append([]string{"hub.a"}, names...) {
		if _, err := pki.Issue(dir, n, pki.Options{Role: roleOf(n)}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startSecured starts hub a with the embedded server secured by the PKI in
// dir, listening on listen; it stops with the test.
func startSecured(t *testing.T, dir, listen string) *hub.Hub {
	t.Helper()
	tc, err := hub.ClientTLS(dir, "hub.a")
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.Start(hub.Options{Data: t.TempDir(), Listen: listen, Name: "a", Security: &hub.Security{Dir: dir}, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

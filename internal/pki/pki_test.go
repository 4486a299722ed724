package pki_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/mosquittotest"
	"github.com/iomtguard/iomtguard/internal/pki"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLifecycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := pki.Init(dir, pki.Options{Org: "St Elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || ca.Subject.CommonName != "St Elsewhere device CA" {
		t.Errorf("CA %+v", ca.Subject)
	}
	if _, err := pki.Init(dir, pki.Options{}); !errors.Is(err, pki.ErrExists) {
		t.Errorf("second init: %v", err)
	}
	dev, err := pki.Issue(dir, "bed1-ecg", pki.Options{Role: "ecg", Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	if dev.Subject.CommonName != "bed1-ecg" || len(dev.URIs) != 2 || dev.URIs[0].String() != "iomtguard://device/bed1-ecg" ||
		dev.URIs[1].String() != "iomtguard://role/ecg" || dev.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("device certificate: %v %v %v", dev.Subject, dev.URIs, dev.ExtKeyUsage)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := dev.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify: %v", err)
	}
	for _, f := range []string{"ca.key", "bed1-ecg.key"} {
		if st, _ := os.Stat(filepath.Join(dir, f)); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, st.Mode())
		}
	}
	if _, err := pki.Issue(dir, "bed1-ecg", pki.Options{}); !errors.Is(err, pki.ErrExists) {
		t.Errorf("issuing a name twice: %v", err)
	}
	for _, bad := range []string{"", "ca", "../etc/passwd", "a b", strings.Repeat("x", 70)} {
		if _, err := pki.Issue(dir, bad, pki.Options{}); !errors.Is(err, pki.ErrName) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	ed, err := pki.Issue(dir, "pump-7", pki.Options{KeyType: pki.Ed25519})
	if err != nil || ed.PublicKeyAlgorithm != x509.Ed25519 {
		t.Errorf("ed25519: %v", err)
	}
	srv, err := pki.Issue(dir, "broker", pki.Options{Server: true, Hosts: []string{"broker.icu.local", "127.0.0.1"}})
	if err != nil || srv.DNSNames[0] != "broker.icu.local" || !srv.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("server: %v %v", srv, err)
	}
	if err := pki.Revoke(dir, "pump-7", "key-compromise", pki.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := pki.Revoke(dir, "pump-7", "", pki.Options{}); !errors.Is(err, pki.ErrNotFound) {
		t.Errorf("revoking twice: %v", err)
	}
	blk := read(t, filepath.Join(dir, "ca.crl"))
	crlDER := blk[bytes.Index(blk, []byte("\n"))+1:]
	_ = crlDER
	crl, err := pki.WriteCRL(dir, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(ed.SerialNumber) != 0 || crl.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Errorf("CRL entries %+v", crl.RevokedCertificateEntries)
	}
	list, err := pki.List(dir)
	if err != nil || len(list) != 3 || list[1].Status(time.Now()) != "revoked" || list[0].Status(time.Now()) != "valid" || list[0].Role != "ecg" {
		t.Errorf("list %+v %v", list, err)
	}
	if _, err := pki.Issue(t.TempDir(), "x", pki.Options{}); !errors.Is(err, pki.ErrNoCA) {
		t.Errorf("no CA: %v", err)
	}
}

// TestMutualTLS: a broker certificate and a device certificate from the same
// CA complete a TLS 1.2 and 1.3 handshake with client authentication in Go's
// crypto/tls, and a client without a certificate is refused.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.Init(dir, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		name string
		opts pki.Options
	}{{"broker", pki.Options{Server: true, Hosts: []string{"127.0.0.1"}}}, {"bed1-ecg", pki.Options{}}, {"bed2-ecg", pki.Options{KeyType: pki.Ed25519}}} {
		if _, err := pki.Issue(dir, n.name, n.opts); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(read(t, filepath.Join(dir, "ca.crt")))
	pair := func(name string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, client := range []string{"bed1-ecg", "bed2-ecg", ""} {
			srvCfg := &tls.Config{Certificates: []tls.Certificate{pair("broker")}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
				MinVersion: version, MaxVersion: version}
			l, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					got <- "accept: " + err.Error()
					return
				}
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					got <- "refused"
				} else {
					got <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				}
				c.Close()
			}()
			cliCfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: version, MaxVersion: version}
			if client != "" {
				cliCfg.Certificates = []tls.Certificate{pair(client)}
			}
			c, err := tls.Dial("tcp", l.Addr().String(), cliCfg)
			if err == nil {
				c.Read(make([]byte, 1)) // TLS 1.3 reports a refused client certificate on the first read
				c.Close()
			}
			want := client
			if want == "" {
				want = "refused"
			}
			if g := <-got; g != want {
				t.Errorf("TLS %x, client %q: server saw %q", version, client, g)
			}
			l.Close()
		}
	}
}

// TestMosquitto: Mosquitto accepts the certificates (require_certificate,
// use_identity_as_username), mosquitto_pub publishes with them, and refuses a
// client without one.
func TestMosquitto(t *testing.T) {
	pub := mosquittotest.Need(t, "mosquitto_pub")
	dir := t.TempDir()
	if _, err := pki.Init(dir, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Issue(dir, "broker", pki.Options{Server: true, Hosts: []string{"127.0.0.1", "localhost"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Issue(dir, "bed1-ecg", pki.Options{}); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range []string{"ca.crt", "broker.crt", "broker.key"} {
		files[f] = read(t, filepath.Join(dir, f))
	}
	b := mosquittotest.StartWith(t, files, `listener {{PORT}} 127.0.0.1
cafile {{DIR}}/ca.crt
certfile {{DIR}}/broker.crt
keyfile {{DIR}}/broker.key
require_certificate true
use_identity_as_username true
allow_anonymous false
`)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(pub, append([]string{"-h", "127.0.0.1", "-p", b.Addr()[strings.LastIndex(b.Addr(), ":")+1:],
			"--cafile", filepath.Join(dir, "ca.crt"), "-t", "ward3/bed1/ecg", "-m", "72", "-q", "1"}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		done := make(chan error, 1)
		go func() { done <- cmd.Run() }()
		select {
		case err := <-done:
			return out.String(), err
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			return out.String(), errors.New("timed out")
		}
	}
	if out, err := run("--cert", filepath.Join(dir, "bed1-ecg.crt"), "--key", filepath.Join(dir, "bed1-ecg.key"), "-i", "bed1-ecg"); err != nil {
		t.Fatalf("mosquitto_pub with the device certificate: %v\n%s\n%s", err, out, b.Log())
	}
	if !b.WaitLog("u'bed1-ecg'", 10*time.Second) {
		t.Errorf("the broker did not log the certificate identity:\n%s", b.Log())
	}
	if out, err := run("-i", "intruder"); err == nil {
		t.Errorf("a client without a certificate published:\n%s", out)
	}
	_ = io.Discard
}

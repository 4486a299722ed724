package sim_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/mosquittotest"
	"github.com/iomtguard/iomtguard/internal/pki"
	"github.com/iomtguard/iomtguard/internal/sim"
)

// TestLiveMosquitto publishes the ICU through a real Mosquitto (Debian's).
func TestLiveMosquitto(t *testing.T) {
	b := mosquittotest.Start(t, "listener {{PORT}} 127.0.0.1\nallow_anonymous true\n")
	st, err := sim.Live(context.Background(), sim.LiveOptions{Broker: b.Addr(), Duration: 3 * time.Second, Beds: 1, Speed: 10})
	if err != nil {
		t.Fatalf("%v\n%s", err, b.Log())
	}
	if st.Connected != st.Clients || st.Published < 30 || st.Received < st.Published*9/10 || st.PublishErrors != 0 {
		t.Errorf("%+v", st)
	}
	if !strings.Contains(b.Log(), "as bed1-ecg") || !strings.Contains(b.Log(), "as nurse-station") {
		t.Errorf("mosquitto did not see the devices:\n%s", b.Log())
	}
}

// TestLiveMosquittoTLS: every client authenticates with its certificate
// from the PKI; the broker takes the certificate's name as the user.
func TestLiveMosquittoTLS(t *testing.T) {
	mosquittotest.Need(t, "mosquitto")
	dir := t.TempDir()
	if _, err := pki.Init(dir, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Issue(dir, "broker", pki.Options{Server: true, Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range []string{"ca.crt", "broker.crt", "broker.key"} {
		files[f], _ = os.ReadFile(filepath.Join(dir, f))
	}
	b := mosquittotest.StartWith(t, files, "listener {{PORT}} 127.0.0.1\ncafile {{DIR}}/ca.crt\ncertfile {{DIR}}/broker.crt\nkeyfile {{DIR}}/broker.key\n"+
		"require_certificate true\nuse_identity_as_username true\nallow_anonymous false\n")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(files["ca.crt"])
	st, err := sim.Live(context.Background(), sim.LiveOptions{Broker: b.Addr(), Duration: 2 * time.Second, Beds: 1, Speed: 10, Scenario: "icu-patient",
		TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ClientCert: func(id string) (*tls.Certificate, error) {
			if _, err := os.Stat(filepath.Join(dir, id+".crt")); err != nil {
				if _, err := pki.Issue(dir, id, pki.Options{}); err != nil {
					return nil, err
				}
			}
			c, err := tls.LoadX509KeyPair(filepath.Join(dir, id+".crt"), filepath.Join(dir, id+".key"))
			return &c, err
		}})
	if err != nil {
		t.Fatalf("%v\n%s", err, b.Log())
	}
	if st.Connected != st.Clients || st.Received == 0 {
		t.Errorf("%+v\n%s", st, b.Log())
	}
	if !strings.Contains(b.Log(), "u'bed1-ecg'") {
		t.Errorf("the broker did not take the certificate identity:\n%s", b.Log())
	}
}

package hub

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/iomtguard/iomtguard/internal/pki"
)

// Security makes the embedded NATS server take only TLS connections with a
// certificate of the iomtguard PKI in Dir, and gives each certificate the
// rights its name implies (read from the PKI's certificates when the hub
// starts):
//
//	sensor.SITE.SENSOR  publishes under iomtguard.sensor.SITE.SENSOR.> only
//	                    (and receives the stream's acknowledgements)
//	hub.NAME            a hub: everything (streams, consumers)
//
// Any other certificate of the PKI (a device's, the gateway's) may connect
// but do nothing. The server's own certificate is Dir/SERVER.crt (default
// "hub", issued with --server and the hub's host names).
type Security struct {
	Dir    string
	Server string
}

// SensorCertName is the PKI name of a sensor's certificate.
func SensorCertName(site, sensor string) string { return "sensor." + site + "." + sensor }

// HubCertName is the PKI name of a hub's client certificate.
func HubCertName(name string) string { return "hub." + name }

func (s *Security) serverName() string {
	if s.Server == "" {
		return "hub"
	}
	return s.Server
}

// apply sets the server's TLS and users.
func (s *Security) apply(so *server.Options) error {
	name := s.serverName()
	cert, err := tls.LoadX509KeyPair(filepath.Join(s.Dir, name+".crt"), filepath.Join(s.Dir, name+".key"))
	if err != nil {
		return fmt.Errorf("hub: the server certificate %q of %s: %w (iomtguard pki issue %s --server --host HOST)", name, s.Dir, err, name)
	}
	pool, err := caPool(s.Dir)
	if err != nil {
		return err
	}
	crl := &crlCheck{dir: s.Dir}
	so.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12, VerifyConnection: crl.verify}
	so.TLS, so.TLSVerify, so.TLSMap, so.TLSTimeout = true, true, true, 5
	users, err := s.users()
	if err != nil {
		return err
	}
	so.Users = users
	return nil
}

// Permissions lists each certificate name of the PKI with the subjects it
// may publish ("*": everything; none: nothing), as the server applies
// them.
func (s *Security) Permissions() (map[string][]string, error) {
	users, err := s.users()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, u := range users {
		n := strings.TrimPrefix(u.Username, pki.DeviceURI("").String())
		switch {
		case u.Permissions == nil:
			out[n] = []string{"*"}
		case u.Permissions.Publish != nil:
			out[n] = u.Permissions.Publish.Allow
		default:
			out[n] = nil
		}
	}
	return out, nil
}

func (s *Security) users() ([]*server.User, error) {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".crt"); ok && n != "ca" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var users []*server.User
	nothing := &server.Permissions{Publish: &server.SubjectPermission{Deny: []string{">"}}, Subscribe: &server.SubjectPermission{Deny: []string{">"}}}
	for _, n := range names {
		u := &server.User{Username: pki.DeviceURI(n).String(), Permissions: nothing}
		parts := strings.Split(n, ".")
		switch {
		case len(parts) == 3 && parts[0] == "sensor" && CheckName("site", parts[1]) == nil && CheckName("sensor", parts[2]) == nil:
			u.Permissions = &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{Subject(parts[1], parts[2], ">")}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}
		case len(parts) == 2 && parts[0] == "hub":
			u.Permissions = nil // all
		}
		users = append(users, u)
	}
	return users, nil
}

func caPool(dir string) (*x509.CertPool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("hub: the PKI's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if blk, _ := pem.Decode(b); blk == nil || !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("hub: %s holds no certificate", filepath.Join(dir, "ca.crt"))
	}
	return pool, nil
}

// crlCheck refuses a certificate the PKI revoked (DIR/ca.crl, read again
// when it changes): a renewed certificate keeps its name, so the name alone
// cannot tell the revoked one from its successor; the serial can.
type crlCheck struct {
	dir     string
	mu      sync.Mutex
	mod     time.Time
	revoked map[string]bool
	err     error
}

func (c *crlCheck) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no client certificate")
	}
	revoked, err := c.load()
	if err != nil {
		return err // fail closed: a CRL that cannot be read refuses everyone
	}
	if revoked[cs.PeerCertificates[0].SerialNumber.Text(16)] {
		return fmt.Errorf("certificate %s revoked", cs.PeerCertificates[0].Subject.CommonName)
	}
	return nil
}

func (c *crlCheck) load() (map[string]bool, error) {
	path := filepath.Join(c.dir, "ca.crl")
	fi, err := os.Stat(path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // nothing revoked yet
	}
	if err != nil {
		return nil, err
	}
	if fi.ModTime().Equal(c.mod) && c.revoked != nil {
		return c.revoked, c.err
	}
	c.mod, c.revoked, c.err = fi.ModTime(), map[string]bool{}, nil
	b, err := os.ReadFile(path)
	if err != nil {
		c.err = err
		return nil, err
	}
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		der = blk.Bytes
	}
	rl, err := x509.ParseRevocationList(der)
	if err == nil {
		var ca *x509.Certificate
		if ca, err = loadCert(filepath.Join(c.dir, "ca.crt")); err == nil {
			err = rl.CheckSignatureFrom(ca)
		}
	}
	if err != nil {
		c.err = fmt.Errorf("hub: %s: %w", path, err)
		return nil, c.err
	}
	for _, e := range rl.RevokedCertificateEntries {
		c.revoked[e.SerialNumber.Text(16)] = true
	}
	return c.revoked, nil
}

func loadCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return pki.ParseCertPEM(b)
}

// ClientTLS is the TLS configuration of a sensor or hub connecting with its
// certificate NAME from the PKI in dir.
func ClientTLS(dir, name string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, fmt.Errorf("hub: certificate %q of %s: %w (iomtguard pki issue %s)", name, dir, err, name)
	}
	pool, err := caPool(dir)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

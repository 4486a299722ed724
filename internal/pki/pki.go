// Package pki is a small certificate authority for medical devices: it makes
// a CA, issues device (client) and broker (server) certificates whose
// identity is the device name (the certificate's common name, which the
// iomtguard gateway and Mosquitto's use_identity_as_username take as the
// MQTT identity, and a URI SAN iomtguard://device/NAME), revokes them with a
// CRL, and lists them.
//
// A directory holds everything: ca.crt, ca.key, NAME.crt, NAME.key for each
// issued name, index.json (what was issued and revoked) and ca.crl. Keys are
// written with mode 0600 and never overwritten.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Errors.
var (
	ErrExists   = errors.New("pki: already exists")
	ErrNoCA     = errors.New("pki: no CA in the directory (run pki init)")
	ErrNotFound = errors.New("pki: no such certificate")
	ErrName     = errors.New("pki: invalid name")
)

// KeyType is the key algorithm of a certificate.
type KeyType string

const (
	ECDSAP256 KeyType = "ecdsa-p256"
	Ed25519   KeyType = "ed25519"
)

// Entry is one issued certificate in the index.
type Entry struct {
	Name      string    `json:"name"`
	Serial    string    `json:"serial"` // hex
	Role      string    `json:"role,omitempty"`
	Server    bool      `json:"server,omitempty"`
	Hosts     []string  `json:"hosts,omitempty"`
	KeyType   KeyType   `json:"key_type"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Revoked   time.Time `json:"revoked,omitzero"`
	Reason    string    `json:"reason,omitempty"`
}

// Status is valid, expired or revoked (at t).
func (e Entry) Status(t time.Time) string {
	switch {
	case !e.Revoked.IsZero():
		return "revoked"
	case t.After(e.NotAfter):
		return "expired"
	}
	return "valid"
}

type index struct {
	Entries   []Entry `json:"entries"`
	CRLNumber int64   `json:"crl_number"`
}

// Options of Init and Issue. Zero values give the defaults.
type Options struct {
	KeyType KeyType // default ECDSA P-256
	Days    int     // validity (default: CA 3650, others 365)
	Server  bool    // a broker certificate (server and client auth)
	Hosts   []string
	Role    string // device role, in the URI SAN iomtguard://role/ROLE and the OU
	Org     string // organisation of the CA (default "iomtguard")
	Now     func() time.Time
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckName reports whether name can name a certificate (and its files).
func CheckName(name string) error {
	if !nameRE.MatchString(name) || name == "ca" {
		return fmt.Errorf("%w %q: use 1 to 64 letters, digits, '.', '_' or '-' (not \"ca\")", ErrName, name)
	}
	return nil
}

func newKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case "", ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("pki: unknown key type %q (want ecdsa-p256 or ed25519)", t)
}

func serial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

// WriteNewFile writes a new file with mode (applied even under a umask); it
// fails with ErrExists when the file exists: keys are never overwritten.
func WriteNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, path)
		}
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// Init makes a CA in dir (created if needed): ca.crt and ca.key.
func Init(dir string, opts Options) (*x509.Certificate, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for _, f := range []string{"ca.key", "ca.crt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrExists, filepath.Join(dir, f))
		}
	}
	key, err := newKey(opts.KeyType)
	if err != nil {
		return nil, err
	}
	days := opts.Days
	if days <= 0 {
		days = 3650
	}
	org := opts.Org
	if org == "" {
		org = "iomtguard"
	}
	now := opts.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: org + " device CA", Organization: []string{org}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(time.Duration(days) * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	if err := WriteNewFile(filepath.Join(dir, "ca.key"), kp, 0o600); err != nil {
		return nil, err
	}
	if err := WriteNewFile(filepath.Join(dir, "ca.crt"), certPEM(der), 0o644); err != nil {
		return nil, err
	}
	if err := saveIndex(dir, &index{}); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// LoadCA reads the CA of dir.
func LoadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	cb, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w %s", ErrNoCA, dir)
		}
		return nil, nil, err
	}
	kb, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, nil, err
	}
	cert, err := ParseCertPEM(cb)
	if err != nil {
		return nil, nil, err
	}
	blk, _ := pem.Decode(kb)
	if blk == nil {
		return nil, nil, fmt.Errorf("pki: %s: no PEM block", filepath.Join(dir, "ca.key"))
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: ca.key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("pki: ca.key is not a signing key")
	}
	return cert, signer, nil
}

// ParseCertPEM reads the first certificate of PEM data.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("pki: no CERTIFICATE block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// DeviceURI is the URI SAN that names a device.
func DeviceURI(name string) *url.URL {
	return &url.URL{Scheme: "iomtguard", Host: "device", Path: "/" + name}
}

// indexMu serialises updates of index.json within a process.
var indexMu sync.Mutex

// Issue issues a certificate for name: NAME.crt and NAME.key in dir. It is
// safe for concurrent use within a process.
func Issue(dir, name string, opts Options) (*x509.Certificate, error) {
	indexMu.Lock()
	defer indexMu.Unlock()
	return issue(dir, name, opts)
}

// issue is Issue with indexMu held.
func issue(dir, name string, opts Options) (*x509.Certificate, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	ca, caKey, err := LoadCA(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range []string{name + ".key", name + ".crt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("%w: %s (to replace it: pki renew --name %s)", ErrExists, filepath.Join(dir, f), name)
		}
	}
	key, err := newKey(opts.KeyType)
	if err != nil {
		return nil, err
	}
	days := opts.Days
	if days <= 0 {
		days = 365
	}
	now := opts.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: ca.Subject.Organization},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(time.Duration(days) * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{DeviceURI(name)},
	}
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyAgreement
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter // a certificate cannot outlive its CA
	}
	if opts.Role != "" {
		tmpl.Subject.OrganizationalUnit = []string{opts.Role}
		tmpl.URIs = append(tmpl.URIs, &url.URL{Scheme: "iomtguard", Host: "role", Path: "/" + opts.Role})
	}
	if opts.Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		hosts := opts.Hosts
		if len(hosts) == 0 {
			hosts = []string{name}
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	if err := WriteNewFile(filepath.Join(dir, name+".key"), kp, 0o600); err != nil {
		return nil, err
	}
	if err := WriteNewFile(filepath.Join(dir, name+".crt"), certPEM(der), 0o644); err != nil {
		return nil, err
	}
	idx, err := loadIndex(dir)
	if err != nil {
		return nil, err
	}
	kt := opts.KeyType
	if kt == "" {
		kt = ECDSAP256
	}
	idx.Entries = append(idx.Entries, Entry{Name: name, Serial: tmpl.SerialNumber.Text(16), Role: opts.Role, Server: opts.Server,
		Hosts: opts.Hosts, KeyType: kt, NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter})
	if err := saveIndex(dir, idx); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// Renewed says what Renew did.
type Renewed struct {
	Cert     *x509.Certificate
	Old      Entry  // the certificate replaced
	MovedTo  string // where its files went (DIR/superseded/NAME-SERIAL.crt and .key)
	Revoked  bool   // the old certificate was revoked (reason superseded)
	Inherits string // what was carried over from it
}

// Renew replaces name's valid certificate with a new one and a new key:
// the old files move to DIR/superseded (keys are never overwritten), and
// the old certificate is revoked as superseded unless keepOld (a rollover:
// it stays valid until it expires, so a device can switch in its own time).
// What opts leaves empty (server, hosts, role, key type) is carried over.
func Renew(dir, name string, opts Options, keepOld bool) (*Renewed, error) {
	indexMu.Lock()
	if err := CheckName(name); err != nil {
		indexMu.Unlock()
		return nil, err
	}
	idx, err := loadIndex(dir)
	if err != nil {
		indexMu.Unlock()
		return nil, err
	}
	at := -1
	for i, e := range idx.Entries {
		if e.Name == name && e.Revoked.IsZero() {
			at = i
		}
	}
	if at < 0 {
		indexMu.Unlock()
		return nil, fmt.Errorf("%w: %s has no valid certificate to renew (issue one)", ErrNotFound, name)
	}
	old := idx.Entries[at]
	var inherited []string
	if !opts.Server && old.Server {
		opts.Server = true
		inherited = append(inherited, "broker")
	}
	if len(opts.Hosts) == 0 && len(old.Hosts) > 0 {
		opts.Hosts = old.Hosts
		inherited = append(inherited, "hosts "+strings.Join(old.Hosts, ","))
	}
	if opts.Role == "" && old.Role != "" {
		opts.Role = old.Role
		inherited = append(inherited, "role "+old.Role)
	}
	if opts.KeyType == "" {
		opts.KeyType = old.KeyType
	}
	moved := filepath.Join(dir, "superseded")
	if err := os.MkdirAll(moved, 0o700); err != nil {
		indexMu.Unlock()
		return nil, err
	}
	base := filepath.Join(moved, name+"-"+old.Serial)
	for _, ext := range []string{".crt", ".key"} {
		if err := os.Rename(filepath.Join(dir, name+ext), base+ext); err != nil && !errors.Is(err, os.ErrNotExist) {
			indexMu.Unlock()
			return nil, err
		}
	}
	c, err := issue(dir, name, opts)
	if err != nil {
		// Put the old files back: the device keeps what it had.
		for _, ext := range []string{".crt", ".key"} {
			os.Rename(base+ext, filepath.Join(dir, name+ext))
		}
		indexMu.Unlock()
		return nil, err
	}
	r := &Renewed{Cert: c, Old: old, MovedTo: base, Inherits: strings.Join(inherited, ", ")}
	if !keepOld {
		idx, err := loadIndex(dir)
		if err == nil {
			for i := range idx.Entries {
				if idx.Entries[i].Serial == old.Serial {
					idx.Entries[i].Revoked, idx.Entries[i].Reason = opts.now().UTC().Truncate(time.Second), "superseded"
				}
			}
			err = saveIndex(dir, idx)
		}
		if err != nil {
			indexMu.Unlock()
			return r, err
		}
		r.Revoked = true
	}
	indexMu.Unlock()
	if r.Revoked {
		if _, err := WriteCRL(dir, opts); err != nil {
			return r, err
		}
	}
	return r, nil
}

// Revoke marks name revoked and rewrites the CRL (ca.crl).
func Revoke(dir, name, reason string, opts Options) error {
	indexMu.Lock()
	idx, err := loadIndex(dir)
	if err != nil {
		return err
	}
	found := false
	for i := range idx.Entries {
		e := &idx.Entries[i]
		if e.Name == name && e.Revoked.IsZero() {
			e.Revoked, e.Reason, found = opts.now().UTC().Truncate(time.Second), reason, true
		}
	}
	if !found {
		indexMu.Unlock()
		return fmt.Errorf("%w: %s (not issued, or already revoked)", ErrNotFound, name)
	}
	err = saveIndex(dir, idx)
	indexMu.Unlock()
	if err != nil {
		return err
	}
	_, err = WriteCRL(dir, opts)
	return err
}

// reasonCodes are RFC 5280 CRL reason codes by name.
var reasonCodes = map[string]int{"unspecified": 0, "key-compromise": 1, "ca-compromise": 2, "affiliation-changed": 3,
	"superseded": 4, "cessation-of-operation": 5, "certificate-hold": 6, "privilege-withdrawn": 9}

// Reasons lists the accepted revocation reasons.
func Reasons() []string {
	var r []string
	for k := range reasonCodes {
		r = append(r, k)
	}
	sort.Strings(r)
	return r
}

// WriteCRL writes ca.crl (PEM) listing every revoked certificate; it is
// valid for 30 days.
func WriteCRL(dir string, opts Options) (*x509.RevocationList, error) {
	indexMu.Lock()
	defer indexMu.Unlock()
	ca, caKey, err := LoadCA(dir)
	if err != nil {
		return nil, err
	}
	idx, err := loadIndex(dir)
	if err != nil {
		return nil, err
	}
	idx.CRLNumber++
	now := opts.now()
	tmpl := &x509.RevocationList{Number: big.NewInt(idx.CRLNumber), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(30 * 24 * time.Hour)}
	for _, e := range idx.Entries {
		if e.Revoked.IsZero() {
			continue
		}
		sn, ok := new(big.Int).SetString(e.Serial, 16)
		if !ok {
			continue
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: sn, RevocationTime: e.Revoked, ReasonCode: reasonCodes[e.Reason]})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	tmp := filepath.Join(dir, "ca.crl.tmp")
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "ca.crl")); err != nil {
		return nil, err
	}
	if err := saveIndex(dir, idx); err != nil {
		return nil, err
	}
	return x509.ParseRevocationList(der)
}

// ParseCRL reads a CRL in PEM (as WriteCRL writes it) or DER.
func ParseCRL(b []byte) (*x509.RevocationList, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	} else if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseRevocationList(b)
}

// RevokedSerials lists a CRL's serials (hex, as Entry.Serial writes them).
func RevokedSerials(rl *x509.RevocationList) map[string]bool {
	out := map[string]bool{}
	for _, e := range rl.RevokedCertificateEntries {
		out[e.SerialNumber.Text(16)] = true
	}
	return out
}

// List returns the issued certificates.
func List(dir string) ([]Entry, error) {
	idx, err := loadIndex(dir)
	if err != nil {
		return nil, err
	}
	return idx.Entries, nil
}

func loadIndex(dir string) (*index, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err != nil {
				return nil, fmt.Errorf("%w %s", ErrNoCA, dir)
			}
			return &index{}, nil
		}
		return nil, err
	}
	var idx index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("pki: %s: %w", filepath.Join(dir, "index.json"), err)
	}
	return &idx, nil
}

func saveIndex(dir string, idx *index) error {
	b, err := json.MarshalIndent(idx, "", " ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "index.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "index.json"))
}

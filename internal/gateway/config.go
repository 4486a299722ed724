// Package gateway is a secure MQTT broker for medical devices: an embedded
// broker (mochi-mqtt) behind iomtguard's own listener and hooks, secure by
// default. Devices authenticate with certificates from the site CA (their
// identity is the certificate's name); the policy gives each identity its
// topics and denies the rest; rate limits and bans stop floods, flapping
// and password guessing before they cost the broker; every decision goes to
// an audit log and to Prometheus metrics; the detectors of package detect
// watch the gateway's own traffic.
package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is everything the gateway needs; Load reads it from YAML, flags
// override it. Zero values take the defaults.
type Config struct {
	// Listen is the TLS listener's address (default :8883).
	Listen string `yaml:"listen"`
	// PKI is the CA directory (iomtguard pki): ca.crt verifies clients,
	// gateway.crt and gateway.key are served, ca.crl (when present) lists
	// revoked certificates.
	PKI string `yaml:"pki"`
	// Cert and Key override PKI/gateway.crt and PKI/gateway.key.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// Policy is the policy file (devices, roles, sealed topics, limits).
	Policy string `yaml:"policy"`
	// Metrics serves /metrics, /healthz and the bans API (default
	// 127.0.0.1:9108; "off" to disable).
	Metrics string `yaml:"metrics"`
	// Audit is the audit log (JSON lines; "-" for stderr, the default).
	Audit string `yaml:"audit"`
	// AuditPublishes also logs every allowed PUBLISH (denials are always logged).
	AuditPublishes bool `yaml:"audit_publishes"`
	// Passwords, when set, is a password file (iomtguard gateway passwd):
	// clients must also send their identity as user name and its password.
	Passwords string `yaml:"passwords"`
	// ClientID says how the MQTT client ID relates to the identity: "identity"
	// (must equal it, the default: no client ID takeover), "prefix" (equal,
	// or the identity followed by '-' or '/' and more), or "any".
	ClientID string `yaml:"client_id"`
	// MinTLS is the lowest TLS version accepted: "1.2" (default) or "1.3".
	MinTLS string `yaml:"min_tls"`
	// State is where bans are kept across restarts (default: the
	// directory $STATE_DIRECTORY, or $XDG_STATE_HOME/iomtguard/gateway, or
	// ~/.local/state/iomtguard/gateway; "none" keeps them in memory only).
	State string `yaml:"state"`
	// FindingsEvery is how often the detectors' findings are checked (default 30s).
	FindingsEvery time.Duration `yaml:"findings_every"`
	// WatchInterval is how often the policy, password file and CRL are
	// checked for changes (default 1s); a change is applied to open
	// sessions at once. SIGHUP (and POST /reload) reload at once too.
	WatchInterval time.Duration `yaml:"watch_interval"`
	// AuditMaxSize rotates the audit file at this size in bytes (default
	// 100 MB); AuditKeep rotated files are kept (default 5).
	AuditMaxSize int64 `yaml:"audit_max_size"`
	AuditKeep    int   `yaml:"audit_keep"`

	// Upstream, when set (mqtts://HOST:PORT or mqtt://HOST:PORT), relays
	// every allowed PUBLISH to the hospital's own broker and delivers what
	// it sends on the filters the devices subscribed to: the gateway
	// terminates the devices' mTLS and enforces identity, policy, limits
	// and sealed topics in front of a broker it does not replace.
	Upstream string `yaml:"upstream"`
	// UpstreamCA verifies the upstream broker's certificate (default: the
	// system roots); UpstreamCert and UpstreamKey are the gateway's client
	// certificate there (default: the gateway's own, PKI/gateway.crt).
	UpstreamCA   string `yaml:"upstream_ca"`
	UpstreamCert string `yaml:"upstream_cert"`
	UpstreamKey  string `yaml:"upstream_key"`
	// UpstreamUser and UpstreamPasswordFile are the gateway's MQTT
	// credentials there (the password is read from the file, never logged).
	UpstreamUser         string `yaml:"upstream_user"`
	UpstreamPasswordFile string `yaml:"upstream_password_file"`
	// UpstreamClientID is the gateway's client ID there (default
	// iomtguard-gateway-HOSTNAME).
	UpstreamClientID string `yaml:"upstream_client_id"`

	// NATS, when set (nats://HOST:4222 or tls://...), makes several gateways
	// act as one: bans and revocations made at one are shared through a
	// JetStream key-value bucket and applied at all within a second.
	NATS string `yaml:"nats"`
	// NATSCA, NATSCert and NATSKey authenticate the gateway to NATS with
	// mTLS (default: none, or the PKI's ca.crt and gateway certificate for
	// a tls:// URL).
	NATSCA   string `yaml:"nats_ca"`
	NATSCert string `yaml:"nats_cert"`
	NATSKey  string `yaml:"nats_key"`
	// NATSBucket names the key-value bucket (default iomtguard_gateway).
	NATSBucket string `yaml:"nats_bucket"`
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = ":8883"
	}
	if c.Metrics == "" {
		c.Metrics = "127.0.0.1:9108"
	}
	if c.Audit == "" {
		c.Audit = "-"
	}
	if c.ClientID == "" {
		c.ClientID = "identity"
	}
	if c.MinTLS == "" {
		c.MinTLS = "1.2"
	}
	if c.FindingsEvery <= 0 {
		c.FindingsEvery = 30 * time.Second
	}
	if c.WatchInterval <= 0 {
		c.WatchInterval = time.Second
	}
	if c.AuditMaxSize == 0 {
		c.AuditMaxSize = 100 << 20
	}
	if c.AuditKeep <= 0 {
		c.AuditKeep = 5
	}
	if c.NATSBucket == "" {
		c.NATSBucket = "iomtguard_gateway"
	}
}

// stateDir is where the gateway keeps its state ("" for none).
func (c *Config) stateDir() string {
	switch c.State {
	case "none":
		return ""
	case "":
		return DefaultStateDir()
	}
	return c.State
}

// DefaultStateDir is the state directory used when none is configured.
func DefaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" { // systemd's StateDirectory=
		return filepath.Join(strings.Split(d, ":")[0], "gateway")
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "iomtguard", "gateway")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "iomtguard", "gateway")
	}
	return filepath.Join(os.TempDir(), "iomtguard-gateway")
}

// ErrConfig marks configuration errors (reported before anything listens).
var ErrConfig = errors.New("gateway: config")

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// LoadConfig reads a config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return ParseConfig(path, bytes.NewReader(b))
}

// ParseConfig reads a config; name labels errors with file and line.
func ParseConfig(name string, r io.Reader) (*Config, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil && err != io.EOF {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			var msgs []string
			for _, e := range te.Errors {
				if m := yamlLine.FindStringSubmatch(e); m != nil {
					msgs = append(msgs, fmt.Sprintf("%s:%s: %s", name, m[1], strings.Replace(m[2], " in type gateway.Config", "", 1)))
				} else {
					msgs = append(msgs, name+": "+e)
				}
			}
			return nil, fmt.Errorf("%w: %s", ErrConfig, strings.Join(msgs, "; "))
		}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("%w: %s:%s: %s", ErrConfig, name, m[1], m[2])
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, name, err)
	}
	return &c, nil
}

// check validates what can be checked before loading files.
func (c *Config) check() error {
	switch c.ClientID {
	case "identity", "prefix", "any":
	default:
		return fmt.Errorf("%w: client_id: want identity, prefix or any, not %q", ErrConfig, c.ClientID)
	}
	if c.MinTLS != "1.2" && c.MinTLS != "1.3" {
		return fmt.Errorf("%w: min_tls: want 1.2 or 1.3, not %q", ErrConfig, c.MinTLS)
	}
	if c.PKI == "" && (c.Cert == "" || c.Key == "") {
		return fmt.Errorf("%w: no certificates: give --pki DIR (with ca.crt, gateway.crt, gateway.key)", ErrConfig)
	}
	if c.Policy == "" {
		return fmt.Errorf("%w: no policy: give --policy FILE (deny by default: without one nothing could connect)", ErrConfig)
	}
	for _, u := range []struct{ name, v string }{{"upstream", c.Upstream}, {"nats", c.NATS}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || p.Host == "" {
			return fmt.Errorf("%w: %s: want a URL such as %s, not %q", ErrConfig, u.name, map[string]string{"upstream": "mqtts://broker:8883", "nats": "nats://127.0.0.1:4222"}[u.name], u.v)
		}
		ok := map[string]bool{"upstream:mqtt": true, "upstream:mqtts": true, "upstream:tcp": true, "upstream:ssl": true, "upstream:tls": true,
			"nats:nats": true, "nats:tls": true}[u.name+":"+p.Scheme]
		if !ok {
			return fmt.Errorf("%w: %s: unsupported scheme %q", ErrConfig, u.name, p.Scheme)
		}
		if p.User != nil {
			return fmt.Errorf("%w: %s: put no credentials in the URL (they would reach logs); use the password file settings", ErrConfig, u.name)
		}
	}
	if c.AuditMaxSize < 0 {
		c.AuditMaxSize = -1
	}
	return nil
}

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
	"os"
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
	// State is where bans are kept across restarts (default: none).
	State string `yaml:"state"`
	// FindingsEvery is how often the detectors' findings are checked (default 30s).
	FindingsEvery time.Duration `yaml:"findings_every"`
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
	return nil
}

package analysis

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/tlsinfo"
)

// TLSSession is one TLS connection as its handshake showed it. Fields a
// capture cannot show are empty and named in Hidden.
type TLSSession struct {
	Stream         int      `json:"stream"`
	Client         string   `json:"client"`
	Server         string   `json:"server"`
	MQTT           bool     `json:"mqtt"` // MQTT over TLS: an MQTT port (8883, 8884) or ALPN "mqtt"
	SNI            string   `json:"sni,omitempty"`
	ALPN           []string `json:"alpn_offered,omitempty"`
	Version        string   `json:"version,omitempty"` // negotiated
	Suite          string   `json:"suite,omitempty"`
	CertRequested  *bool    `json:"client_cert_requested"` // null: not visible
	CertSent       *bool    `json:"client_cert_sent"`
	ClientSubject  string   `json:"client_cert_subject,omitempty"`
	ServerSubject  string   `json:"server_cert_subject,omitempty"`
	ServerIssuer   string   `json:"server_cert_issuer,omitempty"`
	ServerNotAfter string   `json:"server_cert_not_after,omitempty"`
	ServerExpired  bool     `json:"server_cert_expired,omitempty"`
	SelfSigned     bool     `json:"server_cert_self_signed,omitempty"`
	Alerts         []string `json:"alerts,omitempty"`
	Completed      bool     `json:"completed"` // both sides went encrypted
	Hidden         []string `json:"hidden,omitempty"`
}

// TLSResult is the TLS part of the analysis: the sessions (up to
// MaxTLSRows) and counts over all of them.
type TLSResult struct {
	Sessions    int            `json:"sessions"`
	MQTT        int            `json:"mqtt_over_tls"`
	ByVersion   map[string]int `json:"by_version"`
	BySuite     map[string]int `json:"by_suite"`
	ClientCerts map[string]int `json:"client_certs"` // sent, not sent, not visible
	Rows        []TLSSession   `json:"rows"`
	Dropped     int            `json:"rows_dropped"`
}

// MaxTLSRows bounds the TLS sessions listed (all are counted).
const MaxTLSRows = 1000

// tlsPorts are the TCP ports of MQTT over TLS (IANA: 8883; 8884 is the
// common alternative).
var tlsPorts = map[uint16]bool{8883: true, 8884: true}

// tlsAgg gathers the TLS sessions at flow close. It grows by one row per
// TLS connection up to MaxTLSRows, and by one entry per client address of
// MQTT over TLS up to MaxHosts.
type tlsAgg struct {
	res     TLSResult
	clients map[netip.Addr]bool // MQTT-over-TLS client addresses
	servers map[netip.AddrPort]bool
	max     int
}

func newTLSAgg(maxHosts int) *tlsAgg {
	return &tlsAgg{res: TLSResult{ByVersion: map[string]int{}, BySuite: map[string]int{}, ClientCerts: map[string]int{}, Rows: []TLSSession{}},
		clients: map[netip.Addr]bool{}, servers: map[netip.AddrPort]bool{}, max: maxHosts}
}

func suiteName(id uint16) string {
	if id == 0 {
		return ""
	}
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if s.ID == id {
			return s.Name
		}
	}
	return fmt.Sprintf("0x%04x", id)
}

func yesNo(v bool) *bool { return &v }

// add records a TLS connection leaving the connection table.
func (t *tlsAgg) add(ev *pipeline.Flow) {
	h, c := ev.TLS, ev.Conn
	if h == nil {
		return
	}
	s := TLSSession{Stream: c.Index, Client: c.A.String(), Server: c.B.String(), SNI: h.SNI, ALPN: h.ALPN,
		Completed: h.Encrypted[0] && h.Encrypted[1]}
	s.MQTT = tlsPorts[c.B.Port()]
	for _, p := range h.ALPN {
		if p == "mqtt" || p == "x-amzn-mqtt-ca" {
			s.MQTT = true
		}
	}
	if h.Version != 0 {
		s.Version = tlsinfo.VersionName(h.Version)
	}
	s.Suite = suiteName(h.Suite)
	switch {
	case h.Version >= 0x0304:
		// TLS 1.3 encrypts everything after the ServerHello.
		s.Hidden = append(s.Hidden, "certificates (server's and client's) and the certificate request: TLS 1.3 encrypts them")
	case h.ServerCertSubject != "" || h.CertRequested || h.ClientCertSeen:
		s.CertRequested = yesNo(h.CertRequested)
		if h.ClientCertSeen {
			s.CertSent = yesNo(h.ClientCertSent)
		} else if h.CertRequested {
			s.Hidden = append(s.Hidden, "the client's certificate message (not captured)")
		} else {
			s.CertSent = yesNo(false)
		}
	case h.Version == 0:
		s.Hidden = append(s.Hidden, "the server's answer (not captured, or the handshake failed)")
	}
	s.ClientSubject, s.ServerSubject, s.ServerIssuer = h.ClientCertSubject, h.ServerCertSubject, h.ServerCertIssuer
	s.SelfSigned = h.ServerCertSelfSign
	if !h.ServerCertNotAfter.IsZero() {
		s.ServerNotAfter = h.ServerCertNotAfter.UTC().Format(time.RFC3339)
		s.ServerExpired = c.Last > h.ServerCertNotAfter.UnixNano()
	}
	for _, a := range h.Alerts {
		from := "server"
		if a.FromClient {
			from = "client"
		}
		if len(s.Alerts) < 5 {
			s.Alerts = append(s.Alerts, from+": "+a.Description())
		}
	}
	r := &t.res
	r.Sessions++
	if s.Version != "" {
		r.ByVersion[s.Version]++
	} else {
		r.ByVersion["not negotiated"]++
	}
	if s.Suite != "" {
		r.BySuite[s.Suite]++
	}
	switch {
	case s.CertSent == nil:
		r.ClientCerts["not visible"]++
	case *s.CertSent:
		r.ClientCerts["sent"]++
	default:
		r.ClientCerts["not sent"]++
	}
	if s.MQTT {
		r.MQTT++
		if len(t.clients) < t.max {
			t.clients[c.A.Addr()] = true
		}
		if len(t.servers) < t.max {
			t.servers[c.B] = true
		}
	}
	if len(r.Rows) < MaxTLSRows {
		r.Rows = append(r.Rows, s)
	} else {
		r.Dropped++
	}
}

// result returns the TLS section, rows in stream order.
func (t *tlsAgg) result() TLSResult {
	r := t.res
	sort.Slice(r.Rows, func(i, j int) bool { return r.Rows[i].Stream < r.Rows[j].Stream })
	return r
}

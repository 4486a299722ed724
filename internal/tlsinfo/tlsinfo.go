// Package tlsinfo reads the cleartext part of a TLS handshake from a
// reassembled TCP stream and records what a security posture audit needs: the
// versions offered and chosen, the cipher suite, the server name (SNI), whether
// the server asked for a client certificate and whether the client sent one
// (visible up to TLS 1.2), the server certificate's subject, issuer and expiry
// (up to TLS 1.2), and alerts sent in the clear. It is not named "tls" so that it
// never shadows crypto/tls.
package tlsinfo

import (
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"time"
)

// Record content types.
const (
	recChangeCipherSpec = 20
	recAlert            = 21
	recHandshake        = 22
	recApplicationData  = 23
)

// Handshake message types.
const (
	msgClientHello        = 1
	msgServerHello        = 2
	msgCertificate        = 11
	msgServerKeyExchange  = 12
	msgCertificateRequest = 13
	msgServerHelloDone    = 14
	msgClientKeyExchange  = 16
)

// Looks reports whether b starts like a TLS handshake record (content type 22,
// major version 3, a minor version up to 4 and a plausible length).
func Looks(b []byte) bool {
	if len(b) < 5 {
		return len(b) >= 3 && b[0] == recHandshake && b[1] == 3 && b[2] <= 4
	}
	l := int(binary.BigEndian.Uint16(b[3:]))
	return b[0] == recHandshake && b[1] == 3 && b[2] <= 4 && l > 0 && l <= 16384+2048
}

// Event says what a call to Feed found.
type Event uint16

const (
	EventClientHello Event = 1 << iota
	EventServerHello
	EventServerCertificate
	EventCertificateRequest
	EventClientCertificate
	EventAlert
	EventEncrypted // the handshake went encrypted: nothing more is visible
	EventMalformed // not TLS after all, or broken
)

// Handshake accumulates what one connection's handshake shows.
type Handshake struct {
	ClientVersion      uint16   // legacy_version in the ClientHello
	OfferedVersions    []uint16 // supported_versions offered (TLS 1.3 clients), else ClientVersion
	OfferedSuites      []uint16
	SNI                string
	ALPN               []string
	Version            uint16 // chosen: supported_versions in the ServerHello, else its legacy_version
	Suite              uint16
	CertRequested      bool // the server sent a CertificateRequest (visible up to TLS 1.2)
	ClientCertSent     bool // the client sent a non-empty Certificate (up to TLS 1.2)
	ClientCertSeen     bool // the client's Certificate message was visible
	ServerCertSubject  string
	ServerCertIssuer   string
	ServerCertNotAfter time.Time
	ServerCertSelfSign bool
	ClientCertSubject  string
	Alerts             []Alert
	Encrypted          [2]bool // per direction: ChangeCipherSpec or application data seen
}

// Alert is a TLS alert seen in the clear.
type Alert struct {
	FromClient  bool
	Level, Code uint8
}

// Description names the alert (RFC 8446 section 6).
func (a Alert) Description() string {
	if s, ok := alertNames[a.Code]; ok {
		return s
	}
	return fmt.Sprintf("alert_%d", a.Code)
}

var alertNames = map[uint8]string{0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
	40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
	45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
	49: "access_denied", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
	71: "insufficient_security", 80: "internal_error", 90: "user_canceled", 109: "missing_extension",
	112: "unrecognized_name", 116: "certificate_required", 120: "no_application_protocol"}

// Stream parses one direction of a TLS connection.
type Stream struct {
	FromClient bool
	rec        []byte // partial record
	hs         []byte // partial handshake message(s)
	done       bool
	bad        bool
}

// maxHandshake bounds the bytes of one handshake message kept (certificate
// chains are rarely larger).
const maxHandshake = 64 << 10

// Feed parses b (the next bytes of this direction) into h and reports what was found.
func (s *Stream) Feed(h *Handshake, b []byte) Event {
	if s.done || s.bad {
		return 0
	}
	var ev Event
	for len(b) > 0 {
		need := 5
		if len(s.rec) >= 5 {
			need = 5 + int(binary.BigEndian.Uint16(s.rec[3:]))
		}
		if len(s.rec) == 0 && len(b) >= 5 {
			need = 5 + int(binary.BigEndian.Uint16(b[3:]))
		}
		n := need - len(s.rec)
		if n > len(b) {
			n = len(b)
		}
		s.rec = append(s.rec, b[:n]...)
		b = b[n:]
		if len(s.rec) < 5 {
			continue
		}
		full := 5 + int(binary.BigEndian.Uint16(s.rec[3:]))
		if len(s.rec) < full {
			continue
		}
		ev |= s.record(h, s.rec[0], s.rec[5:full])
		s.rec = s.rec[:0]
		if s.done || s.bad {
			break
		}
	}
	return ev
}

func (s *Stream) record(h *Handshake, typ byte, body []byte) Event {
	switch typ {
	case recHandshake:
		if len(s.hs)+len(body) > maxHandshake {
			s.bad = true
			return EventMalformed
		}
		s.hs = append(s.hs, body...)
		var ev Event
		for len(s.hs) >= 4 {
			l := int(s.hs[1])<<16 | int(s.hs[2])<<8 | int(s.hs[3])
			if len(s.hs) < 4+l {
				break
			}
			ev |= s.message(h, s.hs[0], s.hs[4:4+l])
			s.hs = s.hs[4+l:]
		}
		if len(s.hs) == 0 {
			s.hs = s.hs[:0:0]
		}
		return ev
	case recAlert:
		if len(body) >= 2 {
			h.Alerts = append(h.Alerts, Alert{FromClient: s.FromClient, Level: body[0], Code: body[1]})
			return EventAlert
		}
	case recChangeCipherSpec, recApplicationData:
		s.done = true
		if s.FromClient {
			h.Encrypted[0] = true
		} else {
			h.Encrypted[1] = true
		}
		return EventEncrypted
	default:
		s.bad = true
		return EventMalformed
	}
	return 0
}

func (s *Stream) message(h *Handshake, typ byte, m []byte) Event {
	switch {
	case typ == msgClientHello && s.FromClient:
		if parseClientHello(h, m) {
			return EventClientHello
		}
		s.bad = true
		return EventMalformed
	case typ == msgServerHello && !s.FromClient:
		if parseServerHello(h, m) {
			return EventServerHello
		}
		s.bad = true
		return EventMalformed
	case typ == msgCertificate && !s.FromClient:
		if subj, iss, exp, self, ok := firstCert(m); ok {
			h.ServerCertSubject, h.ServerCertIssuer, h.ServerCertNotAfter, h.ServerCertSelfSign = subj, iss, exp, self
		}
		return EventServerCertificate
	case typ == msgCertificate && s.FromClient:
		h.ClientCertSeen = true
		if len(m) >= 3 && int(m[0])<<16|int(m[1])<<8|int(m[2]) > 0 {
			h.ClientCertSent = true
			if subj, _, _, _, ok := firstCert(m); ok {
				h.ClientCertSubject = subj
			}
		}
		return EventClientCertificate
	case typ == msgCertificateRequest && !s.FromClient:
		h.CertRequested = true
		return EventCertificateRequest
	}
	return 0
}

// reader is a sticky-error cursor.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u8() int {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return int(v)
}

func (r *reader) u16() int {
	if len(r.b) < 2 {
		r.bad = true
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return int(v)
}

func (r *reader) u24() int {
	if len(r.b) < 3 {
		r.bad = true
		return 0
	}
	v := int(r.b[0])<<16 | int(r.b[1])<<8 | int(r.b[2])
	r.b = r.b[3:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func parseClientHello(h *Handshake, m []byte) bool {
	r := reader{b: m}
	h.ClientVersion = uint16(r.u16())
	r.bytes(32)
	r.bytes(r.u8())
	suites := reader{b: r.bytes(r.u16())}
	h.OfferedSuites = h.OfferedSuites[:0]
	for len(suites.b) >= 2 {
		h.OfferedSuites = append(h.OfferedSuites, uint16(suites.u16()))
	}
	r.bytes(r.u8())
	if r.bad {
		return false
	}
	h.OfferedVersions = []uint16{h.ClientVersion}
	if len(r.b) < 2 {
		return true
	}
	ext := reader{b: r.bytes(r.u16())}
	for len(ext.b) >= 4 && !ext.bad {
		typ := ext.u16()
		data := reader{b: ext.bytes(ext.u16())}
		switch typ {
		case 0: // server_name
			list := reader{b: data.bytes(data.u16())}
			for len(list.b) >= 3 && !list.bad {
				nt := list.u8()
				name := list.bytes(list.u16())
				if nt == 0 && !list.bad {
					h.SNI = string(name)
				}
			}
		case 16: // ALPN
			list := reader{b: data.bytes(data.u16())}
			for len(list.b) >= 1 && !list.bad {
				p := list.bytes(list.u8())
				if !list.bad {
					h.ALPN = append(h.ALPN, string(p))
				}
			}
		case 43: // supported_versions
			list := reader{b: data.bytes(data.u8())}
			h.OfferedVersions = h.OfferedVersions[:0]
			for len(list.b) >= 2 {
				v := uint16(list.u16())
				if v&0x0f0f != 0x0a0a { // skip GREASE values
					h.OfferedVersions = append(h.OfferedVersions, v)
				}
			}
		}
	}
	return !r.bad
}

func parseServerHello(h *Handshake, m []byte) bool {
	r := reader{b: m}
	h.Version = uint16(r.u16())
	r.bytes(32)
	r.bytes(r.u8())
	h.Suite = uint16(r.u16())
	r.u8()
	if r.bad {
		return false
	}
	if len(r.b) < 2 {
		return true
	}
	ext := reader{b: r.bytes(r.u16())}
	for len(ext.b) >= 4 && !ext.bad {
		typ := ext.u16()
		data := reader{b: ext.bytes(ext.u16())}
		if typ == 43 && len(data.b) >= 2 {
			h.Version = uint16(data.u16())
		}
	}
	return true
}

// firstCert parses the first certificate of a TLS 1.2 Certificate message.
func firstCert(m []byte) (subject, issuer string, notAfter time.Time, selfSigned, ok bool) {
	r := reader{b: m}
	list := reader{b: r.bytes(r.u24())}
	der := list.bytes(list.u24())
	if r.bad || list.bad || len(der) == 0 {
		return "", "", time.Time{}, false, false
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", "", time.Time{}, false, false
	}
	return cert.Subject.String(), cert.Issuer.String(), cert.NotAfter, cert.Subject.String() == cert.Issuer.String(), true
}

// VersionName names a TLS protocol version.
func VersionName(v uint16) string {
	switch v {
	case 0x0300:
		return "SSL 3.0"
	case 0x0301:
		return "TLS 1.0"
	case 0x0302:
		return "TLS 1.1"
	case 0x0303:
		return "TLS 1.2"
	case 0x0304:
		return "TLS 1.3"
	case 0:
		return ""
	}
	return fmt.Sprintf("0x%04x", v)
}

// WeakSuite reports whether a cipher suite is considered weak: NULL, export,
// anonymous, RC4, DES/3DES, or CBC-mode with SHA-1 in TLS 1.2 and below is not
// flagged (widely deployed); the first five are.
func WeakSuite(s uint16) bool {
	if s == 0 {
		return false
	}
	if name, ok := weakSuites[s]; ok && name != "" {
		return true
	}
	return false
}

// weakSuites lists well-known weak suites (IANA TLS Cipher Suites registry).
var weakSuites = map[uint16]string{
	0x0000: "TLS_NULL_WITH_NULL_NULL", 0x0001: "TLS_RSA_WITH_NULL_MD5", 0x0002: "TLS_RSA_WITH_NULL_SHA",
	0x0003: "TLS_RSA_EXPORT_WITH_RC4_40_MD5", 0x0004: "TLS_RSA_WITH_RC4_128_MD5", 0x0005: "TLS_RSA_WITH_RC4_128_SHA",
	0x0006: "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5", 0x0008: "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", 0x0009: "TLS_RSA_WITH_DES_CBC_SHA",
	0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x0017: "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5", 0x0018: "TLS_DH_anon_WITH_RC4_128_MD5",
	0x001B: "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA", 0x0034: "TLS_DH_anon_WITH_AES_128_CBC_SHA", 0x003A: "TLS_DH_anon_WITH_AES_256_CBC_SHA",
	0x003B: "TLS_RSA_WITH_NULL_SHA256", 0xC002: "TLS_ECDH_ECDSA_WITH_RC4_128_SHA", 0xC007: "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
	0xC00C: "TLS_ECDH_RSA_WITH_RC4_128_SHA", 0xC011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA", 0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
	0xC016: "TLS_ECDH_anon_WITH_RC4_128_SHA", 0xC017: "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA", 0xC018: "TLS_ECDH_anon_WITH_AES_128_CBC_SHA",
	0xC019: "TLS_ECDH_anon_WITH_AES_256_CBC_SHA", 0xC006: "TLS_ECDHE_ECDSA_WITH_NULL_SHA", 0xC010: "TLS_ECDHE_RSA_WITH_NULL_SHA",
}

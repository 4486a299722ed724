package tlsinfo_test

import (
	"context"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/tlsinfo"
)

type tlsCollector struct {
	pipeline.Nop
	info   *tlsinfo.Handshake
	events tlsinfo.Event
}

func (c *tlsCollector) OnTLS(ev *pipeline.TLS) {
	c.info = ev.Info
	c.events |= ev.What
}

func handshake(t *testing.T, file string) *tlsCollector {
	t.Helper()
	in, err := pipeline.OpenInput("../../testdata/captures/" + file)
	if err != nil {
		t.Fatal(err)
	}
	c := &tlsCollector{}
	if _, err := pipeline.New(pipeline.Options{}, c).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if c.info == nil {
		t.Fatalf("%s: no TLS seen", file)
	}
	return c
}

func TestTLS12(t *testing.T) {
	c := handshake(t, "tls12.pcap")
	h := c.info
	if h.Version != 0x0303 || h.SNI != "broker.icu.local" || !h.CertRequested || !h.ClientCertSent || !h.ClientCertSeen {
		t.Errorf("%+v", h)
	}
	if !strings.Contains(h.ServerCertSubject, "CN=broker.icu.local") || !strings.Contains(h.ServerCertIssuer, "iomtguard test CA") ||
		h.ServerCertNotAfter.Year() != 2033 || h.ServerCertSelfSign {
		t.Errorf("server certificate: %q %q %v", h.ServerCertSubject, h.ServerCertIssuer, h.ServerCertNotAfter)
	}
	if !strings.Contains(h.ClientCertSubject, "CN=bed1-ecg") {
		t.Errorf("client certificate: %q", h.ClientCertSubject)
	}
	if h.Suite == 0 || tlsinfo.WeakSuite(h.Suite) || tlsinfo.VersionName(h.Version) != "TLS 1.2" {
		t.Errorf("suite %#x", h.Suite)
	}
	if c.events&tlsinfo.EventEncrypted == 0 {
		t.Error("the switch to encryption was not seen")
	}
}

func TestTLS13(t *testing.T) {
	h := handshake(t, "tls13.pcap").info
	if h.Version != 0x0304 || h.SNI != "broker.icu.local" || h.CertRequested || h.ClientCertSent {
		t.Errorf("%+v", h)
	}
	found := false
	for _, v := range h.OfferedVersions {
		found = found || v == 0x0304
	}
	if !found {
		t.Errorf("offered %x", h.OfferedVersions)
	}
}

func TestLooks(t *testing.T) {
	if !tlsinfo.Looks([]byte{0x16, 3, 1, 0, 0xa5, 1}) || tlsinfo.Looks([]byte{0x10, 0x0c, 0, 4}) || tlsinfo.Looks([]byte("GET /")) {
		t.Error("Looks")
	}
}

func FuzzStream(f *testing.F) {
	f.Add([]byte{0x16, 3, 1, 0, 8, 1, 0, 0, 4, 3, 3, 0, 0}, true)
	f.Add([]byte{0x16, 3, 3, 0, 6, 2, 0, 0, 2, 3, 3, 0x15, 3, 3, 0, 2, 2, 40}, false)
	f.Fuzz(func(t *testing.T, b []byte, client bool) {
		var h tlsinfo.Handshake
		s := tlsinfo.Stream{FromClient: client}
		for len(b) > 0 {
			n := int(b[0]%32) + 1
			if n > len(b) {
				n = len(b)
			}
			s.Feed(&h, b[:n])
			b = b[n:]
		}
	})
}

package source

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/iomtguard/iomtguard/internal/packet"
)

// Filter is a capture filter in tcpdump's words (a subset of pcap-filter):
//
//	[src|dst] host ADDR      an IPv4 or IPv6 address
//	[src|dst] net PREFIX     10.5.126.0/24 (or "net 10.5.126.0 mask 255.255.255.0")
//	[src|dst] port N         TCP or UDP port
//	[src|dst] portrange A-B
//	tcp | udp | icmp | icmp6 | ip | ip6 | vlan [ID]
//	tcp port N, udp dst port N   (a protocol qualifying a port)
//	not X, X and Y, X or Y, (X)   also !, &&, ||
//
// It is applied to every source alike (an interface, a stream, a
// directory, a replay), in user space: frames left out are counted, not
// analysed, and are not numbered.
type Filter struct {
	text string
	root node
}

func (f *Filter) String() string { return f.text }

// Match reports whether the decoded frame passes.
func (f *Filter) Match(fr *packet.Frame) bool { return f == nil || f.root.match(fr) }

type node interface{ match(*packet.Frame) bool }

type and [2]node
type or [2]node
type not struct{ n node }

func (n and) match(f *packet.Frame) bool { return n[0].match(f) && n[1].match(f) }
func (n or) match(f *packet.Frame) bool  { return n[0].match(f) || n[1].match(f) }
func (n not) match(f *packet.Frame) bool { return !n.n.match(f) }

// dir of a primitive: either end, the source, or the destination.
type dir uint8

const (
	either dir = iota
	src
	dst
)

type hostNode struct {
	d dir
	p netip.Prefix
}

func (n hostNode) match(f *packet.Frame) bool {
	if f.IPVersion == 0 {
		return false
	}
	s, d := n.p.Contains(f.Src.Unmap()), n.p.Contains(f.Dst.Unmap())
	switch n.d {
	case src:
		return s
	case dst:
		return d
	}
	return s || d
}

type portNode struct {
	d      dir
	lo, hi uint16
}

func (n portNode) match(f *packet.Frame) bool {
	if f.IPProto != packet.ProtoTCP && f.IPProto != packet.ProtoUDP {
		return false
	}
	in := func(p uint16) bool { return p >= n.lo && p <= n.hi }
	switch n.d {
	case src:
		return in(f.SrcPort)
	case dst:
		return in(f.DstPort)
	}
	return in(f.SrcPort) || in(f.DstPort)
}

type protoNode struct{ proto uint8 }

func (n protoNode) match(f *packet.Frame) bool { return f.IPVersion != 0 && f.IPProto == n.proto }

type ipNode struct{ v uint8 }

func (n ipNode) match(f *packet.Frame) bool { return f.IPVersion == n.v }

type vlanNode struct {
	id  uint16
	any bool
}

func (n vlanNode) match(f *packet.Frame) bool {
	return f.VLAN != 0 && (n.any || f.VLAN == n.id)
}

// ParseFilter reads a filter expression; an empty one matches everything
// (nil).
func ParseFilter(text string) (*Filter, error) {
	toks := tokenize(text)
	if len(toks) == 0 {
		return nil, nil
	}
	p := &parser{toks: toks}
	n, err := p.expr()
	if err == nil && p.i < len(p.toks) {
		err = fmt.Errorf("unexpected %q", p.toks[p.i])
	}
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", text, err)
	}
	return &Filter{text: text, root: n}, nil
}

func tokenize(s string) []string {
	s = strings.NewReplacer("(", " ( ", ")", " ) ", "!", " ! ", "&&", " && ", "||", " || ").Replace(s)
	return strings.Fields(s)
}

type parser struct {
	toks []string
	i    int
}

func (p *parser) peek() string {
	if p.i < len(p.toks) {
		return strings.ToLower(p.toks[p.i])
	}
	return ""
}

func (p *parser) next() string {
	t := p.peek()
	p.i++
	return t
}

func (p *parser) expr() (node, error) {
	l, err := p.term()
	if err != nil {
		return nil, err
	}
	for p.peek() == "or" || p.peek() == "||" {
		p.next()
		r, err := p.term()
		if err != nil {
			return nil, err
		}
		l = or{l, r}
	}
	return l, nil
}

func (p *parser) term() (node, error) {
	l, err := p.factor()
	if err != nil {
		return nil, err
	}
	for p.peek() == "and" || p.peek() == "&&" {
		p.next()
		r, err := p.factor()
		if err != nil {
			return nil, err
		}
		l = and{l, r}
	}
	return l, nil
}

func (p *parser) factor() (node, error) {
	switch t := p.peek(); t {
	case "":
		return nil, fmt.Errorf("expression ends too soon")
	case "not", "!":
		p.next()
		n, err := p.factor()
		if err != nil {
			return nil, err
		}
		return not{n}, nil
	case "(":
		p.next()
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, fmt.Errorf("missing ')'")
		}
		return n, nil
	}
	return p.primitive()
}

func (p *parser) primitive() (node, error) {
	d := either
	switch p.peek() {
	case "src":
		d = src
		p.next()
	case "dst":
		d = dst
		p.next()
	}
	kw := p.next()
	switch kw {
	case "host":
		a, err := netip.ParseAddr(p.next())
		if err != nil {
			return nil, fmt.Errorf("host: %v", err)
		}
		a = a.Unmap()
		return hostNode{d, netip.PrefixFrom(a, a.BitLen())}, nil
	case "net":
		arg := p.next()
		if p.peek() == "mask" {
			p.next()
			m, err := netip.ParseAddr(p.next())
			if err != nil || !m.Is4() {
				return nil, fmt.Errorf("net %s mask: want an IPv4 mask", arg)
			}
			b := m.As4()
			bits := 0
			for _, x := range b {
				for i := 7; i >= 0; i-- {
					if x&(1<<i) == 0 {
						goto done
					}
					bits++
				}
			}
		done:
			arg = fmt.Sprintf("%s/%d", arg, bits)
		}
		pf, err := netip.ParsePrefix(arg)
		if err != nil {
			return nil, fmt.Errorf("net: %v", err)
		}
		return hostNode{d, pf.Masked()}, nil
	case "port":
		n, err := strconv.ParseUint(p.next(), 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port: want 0 to 65535")
		}
		return portNode{d, uint16(n), uint16(n)}, nil
	case "portrange":
		a, b, ok := strings.Cut(p.next(), "-")
		lo, err1 := strconv.ParseUint(a, 10, 16)
		hi, err2 := strconv.ParseUint(b, 10, 16)
		if !ok || err1 != nil || err2 != nil || lo > hi {
			return nil, fmt.Errorf("portrange: want LOW-HIGH")
		}
		return portNode{d, uint16(lo), uint16(hi)}, nil
	}
	if d != either {
		return nil, fmt.Errorf("%q after src/dst: want host, net, port or portrange", kw)
	}
	switch kw {
	case "tcp", "udp":
		proto := protoNode{packet.ProtoTCP}
		if kw == "udp" {
			proto = protoNode{packet.ProtoUDP}
		}
		// "tcp port 1883", "udp dst port 53": the protocol qualifies a port.
		switch p.peek() {
		case "port", "portrange", "src", "dst":
			n, err := p.primitive()
			if err != nil {
				return nil, err
			}
			return and{proto, n}, nil
		}
		return proto, nil
	case "icmp":
		return protoNode{1}, nil
	case "icmp6":
		return protoNode{58}, nil
	case "ip":
		return ipNode{4}, nil
	case "ip6":
		return ipNode{6}, nil
	case "vlan":
		if n, err := strconv.ParseUint(p.peek(), 10, 12); err == nil {
			p.next()
			return vlanNode{id: uint16(n)}, nil
		}
		return vlanNode{any: true}, nil
	}
	return nil, fmt.Errorf("unknown word %q (host, net, port, portrange, tcp, udp, icmp, ip, ip6, vlan, src, dst, and, or, not)", kw)
}

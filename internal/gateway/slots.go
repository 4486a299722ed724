package gateway

import (
	"net/netip"
	"sync"
)

// slots bounds the TLS handshakes in progress: in all, per address and per
// subnet (/24 for IPv4, /48 for IPv6). When every slot is taken, a handshake
// from a subnet that holds fewer slots than the busiest subnet takes the
// busiest subnet's oldest slot (max-min fairness), so slow handshakes
// spread over many addresses cannot lock another subnet's devices out: an
// attacker keeps at most an equal share.
type slots struct {
	mu           sync.Mutex
	max          int
	perIP        int
	perNet       int
	used         int
	byIP         map[netip.Addr]int
	byNet        map[netip.Prefix][]*slot // oldest first
	preemptCount int64
}

// slot is one handshake's place; cancel aborts the handshake.
type slot struct {
	ip      netip.Addr
	net     netip.Prefix
	cancel  func()
	evicted bool
	freed   bool
}

func newSlots(max, perIP, perNet int) *slots {
	return &slots{max: max, perIP: perIP, perNet: perNet, byIP: map[netip.Addr]int{}, byNet: map[netip.Prefix][]*slot{}}
}

// subnet is the address's /24 (IPv4) or /48 (IPv6).
func subnet(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// setLimits changes the bounds (a policy reload); slots held stay.
func (s *slots) setLimits(max, perIP, perNet int) {
	s.mu.Lock()
	s.max, s.perIP, s.perNet = max, perIP, perNet
	s.mu.Unlock()
}

// acquire takes a slot for a handshake from ip, or says why not.
func (s *slots) acquire(ip netip.Addr, cancel func()) (*slot, string) {
	ip = ip.Unmap()
	n := subnet(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.byIP[ip] >= s.perIP:
		return nil, "too many TLS handshakes in progress from this address"
	case len(s.byNet[n]) >= s.perNet:
		return nil, "too many TLS handshakes in progress from this subnet"
	}
	if s.used >= s.max {
		// Take the oldest slot of the busiest subnet, if it holds more than
		// this subnet would after taking one.
		var busiest netip.Prefix
		most := 0
		for p, l := range s.byNet {
			if len(l) > most {
				busiest, most = p, len(l)
			}
		}
		if most <= len(s.byNet[n])+1 {
			return nil, "too many TLS handshakes in progress"
		}
		victim := s.byNet[busiest][0]
		victim.evicted = true
		s.free(victim)
		s.preemptCount++
		go victim.cancel()
	}
	sl := &slot{ip: ip, net: n, cancel: cancel}
	s.used++
	s.byIP[ip]++
	s.byNet[n] = append(s.byNet[n], sl)
	return sl, ""
}

// release gives a slot back (a no-op for a slot already taken away).
func (s *slots) release(sl *slot) {
	s.mu.Lock()
	s.free(sl)
	s.mu.Unlock()
}

func (s *slots) free(sl *slot) {
	if sl.freed {
		return
	}
	sl.freed = true
	s.used--
	if s.byIP[sl.ip]--; s.byIP[sl.ip] <= 0 {
		delete(s.byIP, sl.ip)
	}
	l := s.byNet[sl.net]
	for i, x := range l {
		if x == sl {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(s.byNet, sl.net)
	} else {
		s.byNet[sl.net] = l
	}
}

// inUse reports the slots taken (for tests and /healthz).
func (s *slots) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// wasEvicted reports whether the slot was given to another subnet.
func (s *slots) wasEvicted(sl *slot) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sl.evicted
}

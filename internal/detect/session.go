package detect

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/stats"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// clientAddr is the client side's address of an MQTT event's connection.
func clientAddr(m *pipeline.MQTT) netip.Addr {
	if m.Conn == nil {
		return netip.Addr{}
	}
	return m.Conn.Src(m.Session.ClientDir).Addr().Unmap()
}

// brokerEnd is the broker side's endpoint.
func brokerEnd(m *pipeline.MQTT) netip.AddrPort {
	if m.Conn == nil {
		return netip.AddrPort{}
	}
	return m.Conn.Dst(m.Session.ClientDir)
}

// authFailure reports whether a CONNACK code refuses the client's
// credentials: 3.1/3.1.1 return codes 4 (bad user name or password) and 5
// (not authorised); MQTT 5 reason codes 0x86 (bad user name or password),
// 0x87 (not authorised) and 0x8C (bad authentication method).
func authFailure(v mqtt.Version, code uint8) bool {
	if v == mqtt.V5 {
		return code == 0x86 || code == 0x87 || code == 0x8C
	}
	return code == 4 || code == 5
}

// --- attack.bruteforce -------------------------------------------------------

var bruteforceSpec = Spec{
	Name: "bruteforce",
	IDs:  []string{"attack.bruteforce"},
	Rule: "A source (or a user name, over all sources) has at least min_failures CONNECTs refused for credentials " +
		"(return code 4 or 5; MQTT 5 reason 0x86, 0x87 or 0x8C) within window, and either tried at least min_distinct " +
		"different credentials or failed fast_failures times within one minute (faster than any device's reconnect " +
		"back-off; EMQX's flapping rate). A device retrying one wrong password slowly is not an attack. Guessing " +
		"spread too thin for that is found per broker: at least 100 refusals within window, from at least 10 " +
		"source addresses, and at least half of them with credentials not tried before (a fleet retrying its old " +
		"passwords repeats them). Credentials are compared by a keyed hash held in memory only.",
	Params: []Param{
		{"min_failures", 10, "", "refused CONNECTs needed"},
		{"window", 600, "s", "window in which they must fall"},
		{"min_distinct", 3, "", "distinct credentials (user name and password) that make the failures a guessing attack"},
		{"fast_failures", 15, "", "failures within 60 s that make it an attack even with one credential"},
	},
	New: newBruteforce,
}

type authKey struct {
	src  netip.Addr
	user string // "" for per-source keys
	per  bool   // a per-user-name key
}

type authAgg struct {
	failures  int64
	win, fast *ring
	hitWin    bool
	hitFast   bool
	// Sets that keep their first member in place: most keys see one
	// source, client ID and broker, and five maps made for each were 1.6 KB
	// a key: 300,000 refused CONNECTs, each with a user name of its own,
	// took 511 MiB.
	creds   fewSet[uint64]
	users   fewSet[string]
	clients fewSet[string]
	sources fewSet[string]
	targets fewSet[string]
	span    span
	frames  exemplars
}

// fewSet is a set of at most max members (add's) that holds its first in
// place and makes a map at its second.
type fewSet[K comparable] struct {
	one K
	has bool
	m   map[K]bool
}

func (s *fewSet[K]) add(k K, max int) {
	switch {
	case s.m != nil:
		if len(s.m) < max {
			s.m[k] = true
		}
	case !s.has:
		s.one, s.has = k, true
	case s.one != k && max > 1:
		s.m = map[K]bool{s.one: true, k: true}
	}
}

func (s *fewSet[K]) len() int {
	switch {
	case s.m != nil:
		return len(s.m)
	case s.has:
		return 1
	}
	return 0
}

// addTo adds the members to set.
func (s *fewSet[K]) addTo(set map[K]bool) {
	if s.m == nil {
		if s.has {
			set[s.one] = true
		}
		return
	}
	for k := range s.m {
		set[k] = true
	}
}

type bruteforce struct {
	pipeline.Nop
	env                        *Env
	minFail, minDistinct, fast int
	window                     int64
	pending                    map[*pipeline.Session]uint64 // credential hash of the CONNECT awaiting its CONNACK (in memory only)
	pendingUser                map[*pipeline.Session]string
	aggs                       map[authKey]*authAgg
	// The keys of each kind in aggs, each at most maxKeys/2: 100,000 user
	// names tried once each filled the table, and a source guessing
	// passwords after them was not counted.
	nKeys [2]int
	// spread is the refusals of each broker (at most 1,000 brokers), for
	// guessing spread over so many addresses and user names that no key
	// above reaches min_failures: 300,000 logins from 65,536 addresses,
	// each with credentials of its own, were not found.
	spread map[netip.AddrPort]*spreadAgg
	// pendingMix is a hash of the CONNECT's credentials under mixKey (from
	// the first CONNECT's time), not under the run's random seed: counts of
	// distinct credentials that are the same for the same input.
	pendingMix map[*pipeline.Session]uint64
	mixKey     uint64
	// clock is the CONNECTs' and CONNACKs' time; gate paces each kind's
	// sweeps (see sweep).
	clock steadyClock
	gate  [2]sweepGate
}

// spreadAgg is a broker's refused CONNECTs, for guessing spread over
// sources (spreadMin within window, from spreadSources addresses or more,
// at least half of them with credentials not tried before).
type spreadAgg struct {
	failures    int64
	win         *ring
	hit         bool
	creds, srcs stats.FewDistinct
	sample      fewSet[string] // some of the sources, for the evidence
	span        span
	frames      exemplars
}

const (
	spreadMin     = 100
	spreadSources = 10
)

func newBruteforce(e *Env) Detector {
	return &bruteforce{env: e, minFail: int(e.P("min_failures")), minDistinct: int(e.P("min_distinct")),
		fast: int(e.P("fast_failures")), window: e.D("window"),
		pending: map[*pipeline.Session]uint64{}, pendingUser: map[*pipeline.Session]string{}, aggs: map[authKey]*authAgg{},
		spread: map[netip.AddrPort]*spreadAgg{}, pendingMix: map[*pipeline.Session]uint64{}}
}

func (*bruteforce) uses() events { return evMQTT | evFlow }

func (b *bruteforce) OnMQTT(m *pipeline.MQTT) {
	p := m.Pkt
	switch {
	case p.Type == mqtt.CONNECT && m.FromClient:
		b.clock.see(m.Frame.TS)
		var h maphash.Hash
		h.SetSeed(b.env.hashSeed())
		h.Write(p.Username)
		h.WriteByte(0)
		h.Write(p.Password)
		if b.mixKey == 0 {
			b.mixKey = stats.Mix64(uint64(m.Frame.TS)) | 1
		}
		if len(b.pending) < maxKeys {
			b.pending[m.Session] = h.Sum64()
			b.pendingUser[m.Session] = string(p.Username)
			b.pendingMix[m.Session] = stats.Mix64(stats.Hash(p.Username) ^ stats.Mix64(stats.Hash(p.Password)^b.mixKey))
		}
	case p.Type == mqtt.CONNACK && !m.FromClient && p.Has(mqtt.FieldReasonCode):
		cred, ok := b.pending[m.Session]
		user, mix := b.pendingUser[m.Session], b.pendingMix[m.Session]
		delete(b.pending, m.Session)
		delete(b.pendingUser, m.Session)
		delete(b.pendingMix, m.Session)
		b.clock.see(m.Frame.TS)
		if !authFailure(m.Session.Version, p.ReasonCode) {
			return
		}
		if !ok {
			cred = 0 // CONNECT not captured
		}
		src := clientAddr(m)
		t := m.Frame.TS
		b.spreadAdd(brokerEnd(m), src, ok, mix, t, m.Frame.Num)
		for _, k := range []authKey{{src: src}, {user: user, per: true}} {
			if k.per && user == "" {
				continue
			}
			a := b.aggs[k]
			if a == nil {
				kind := 0
				if k.per {
					kind = 1
				}
				if b.nKeys[kind] >= maxKeys/2 && !b.sweep(kind) {
					continue
				}
				b.nKeys[kind]++
				a = &authAgg{win: newRing(b.minFail, b.window), fast: newRing(b.fast, 60e9)}
				b.aggs[k] = a
			}
			a.failures++
			if s := a.win.add(t); s >= 0 && s <= b.window {
				a.hitWin = true
			}
			if s := a.fast.add(t); s >= 0 && s <= 60e9 {
				a.hitFast = true
			}
			a.creds.add(cred, 10000)
			a.users.add(printable(user, 64), 1000)
			a.clients.add(idString(m.Session.ClientID), 1000)
			a.sources.add(src.String(), 1000)
			a.targets.add(brokerEnd(m).String(), 1000)
			a.span.add(t)
			a.frames.add(m.Frame.Num)
		}
	}
}

// attack reports whether a key's refusals are a finding.
func (b *bruteforce) attack(a *authAgg) bool {
	return a.hitWin && (a.creds.len() >= b.minDistinct || a.users.len() >= b.minDistinct || a.hitFast)
}

// sweep lets go of the keys of kind (0: sources, 1: user names) that are
// not a finding and have had no refusal for window (and for the minute of
// fast_failures): a key's next refusals cannot make a window with these,
// so a key let go starts again from its next. It reports whether kind has
// room now. 50,000 user names tried once each filled the user names' half
// for good, and guessing one user name's password from many sources after
// them went unseen (in a watch, any 50,000 user names refused over its
// whole run: TestBruteforceKeysSwept). What a key let go loses: a key that
// reached min_failures with too few credentials, quiet for the window,
// would have become a finding with one more credential tried any time
// after; let go, it needs min_failures again (only when the half is full).
func (b *bruteforce) sweep(kind int) bool {
	g := &b.gate[kind]
	if !g.open(b.clock.now, 1e9) {
		return false
	}
	quiet := max(b.window, 60e9)
	n := b.nKeys[kind]
	for k, a := range b.aggs {
		if k.per != (kind == 1) || b.attack(a) {
			continue
		}
		if a.span.last+quiet < b.clock.now {
			delete(b.aggs, k)
			b.nKeys[kind]--
		} else {
			g.wait(a.span.last + quiet + 1)
		}
	}
	g.done(n-b.nKeys[kind] < maxKeys/8)
	return b.nKeys[kind] < maxKeys/2
}

func (b *bruteforce) spreadAdd(broker netip.AddrPort, src netip.Addr, known bool, mix uint64, t int64, frame int) {
	g := b.spread[broker]
	if g == nil {
		if len(b.spread) >= 1000 {
			return
		}
		g = &spreadAgg{win: newRing(spreadMin, b.window)}
		b.spread[broker] = g
	}
	g.failures++
	if s := g.win.add(t); s >= 0 && s <= b.window {
		g.hit = true
	}
	if known {
		g.creds.Add(mix)
	}
	g.srcs.Add(stats.Hash(src.AsSlice()))
	g.sample.add(src.String(), 20)
	g.span.add(t)
	g.frames.add(frame)
}

func (b *bruteforce) OnFlow(f *pipeline.Flow) {
	if f.Kind == pipeline.FlowClosed && f.Session != nil {
		delete(b.pending, f.Session)
		delete(b.pendingUser, f.Session)
		delete(b.pendingMix, f.Session)
	}
}

func (b *bruteforce) Findings(Models) []Finding {
	ev := Evidence{Counts: map[string]int64{}}
	var sp span
	srcs, users, clients, targets := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	var frames exemplars
	keys := make([]authKey, 0, len(b.aggs))
	for k := range b.aggs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].per != keys[j].per {
			return !keys[i].per
		}
		if keys[i].src != keys[j].src {
			return keys[i].src.Less(keys[j].src)
		}
		return keys[i].user < keys[j].user
	})
	found := false
	for _, k := range keys {
		a := b.aggs[k]
		if !b.attack(a) {
			continue
		}
		found = true
		what := "source " + k.src.String()
		if k.per {
			what = "user name " + printable(k.user, 64)
		} else {
			ev.Counts["refused_connects"] += a.failures
		}
		ev.Notes = append(ev.Notes, fmt.Sprintf("%s: %d refused CONNECTs, %d distinct credentials, %d user names, from %s to %s",
			what, a.failures, a.creds.len(), a.users.len(), fmtTime(a.span.first), fmtTime(a.span.last)))
		sp.add(a.span.first)
		sp.add(a.span.last)
		a.sources.addTo(srcs)
		a.users.addTo(users)
		delete(users, "")
		a.clients.addTo(clients)
		a.targets.addTo(targets)
		for _, fr := range a.frames {
			frames.add(fr)
		}
	}
	var spreadSrcs int64
	spreadExact := true
	brokers := make([]netip.AddrPort, 0, len(b.spread))
	for k := range b.spread {
		brokers = append(brokers, k)
	}
	sort.Slice(brokers, func(i, j int) bool { return brokers[i].Compare(brokers[j]) < 0 })
	for _, k := range brokers {
		g := b.spread[k]
		nsrc, srcExact := g.srcs.Estimate()
		ncred, credExact := g.creds.Estimate()
		nsrc, ncred = min(nsrc, g.failures), min(ncred, g.failures) // past them, the estimate's error
		if !g.hit || nsrc < spreadSources || 2*ncred < g.failures {
			continue
		}
		found = true
		ev.Counts["spread_refused_connects"] += g.failures
		spreadSrcs, spreadExact = max(spreadSrcs, nsrc), srcExact
		ev.Notes = append(ev.Notes, fmt.Sprintf("broker %s: %d refused CONNECTs from %s with %s, from %s to %s: guessing spread over "+
			"many addresses and credentials (credential stuffing, or passwords sprayed from many hosts)",
			k, g.failures, about(nsrc, srcExact, "source"), about(ncred, credExact, "distinct credential"),
			fmtTime(g.span.first), fmtTime(g.span.last)))
		sp.add(g.span.first)
		sp.add(g.span.last)
		g.sample.addTo(srcs)
		targets[k.String()] = true
		for _, fr := range g.frames {
			frames.add(fr)
		}
	}
	if !found {
		return nil
	}
	ev.Sources, ev.Usernames, ev.ClientIDs, ev.Targets = sorted(srcs, 20), sorted(users, 20), sorted(clients, 20), sorted(targets, 10)
	sort.Ints(frames)
	ev.Frames = frames
	f := newFinding("attack.bruteforce", sp.first, sp.last, ev)
	f.Title = fmt.Sprintf("Password guessing: %d refused CONNECTs from %s", ev.Counts["refused_connects"], joinSet(srcs, 3))
	if ev.Counts["refused_connects"] == 0 { // spread only: the sources listed are a sample
		f.Title = fmt.Sprintf("Password guessing spread over %s: %d refused CONNECTs", about(spreadSrcs, spreadExact, "source"), ev.Counts["spread_refused_connects"])
	}
	return []Finding{f}
}

// about is n things, "about n" when n is an estimate.
func about(n int64, exact bool, what string) string {
	if exact {
		return plural(n, what)
	}
	return "about " + plural(n, what)
}

// --- attack.connect-flood ----------------------------------------------------

var connectFloodSpec = Spec{
	Name: "connect-flood",
	IDs:  []string{"attack.connect-flood"},
	Rule: "Counts accepted MQTT sessions shorter than short_session that ended cleanly (sessions with protocol " +
		"errors or reset by the client belong to attack.malformed). A client ID with flapping such sessions within " +
		"60 s (EMQX's flapping rule: 15 a minute), a source address with per_source, or the whole capture with " +
		"global within 60 s is a connection storm. Sessions still open when the capture ended less than " +
		"short_session after they began cannot be judged short or long: they count as short, so that a storm " +
		"recorded only at its start is still found. So do sessions the connection table let go while still open " +
		"(more connections at once than it holds) whose last packet came less than short_session after they " +
		"began; the evidence counts both.",
	Params: []Param{
		{"short_session", 10, "s", "sessions shorter than this count"},
		{"flapping", 15, "", "short sessions of one client ID within 60 s"},
		{"per_source", 15, "", "short sessions from one source address within 60 s"},
		{"global", 100, "", "short sessions over all sources within 60 s"},
	},
	New: newConnectFlood,
}

// sessEnd is one accepted session's end, 32 bytes: a flood of a million
// sessions keeps a million of them (at 64 bytes, with the address and
// client ID in each, they were the largest table of analyze on a storm of
// a million clients, 51 MB of its 337 MB heap). The source address and the
// client ID are kept as hashes; the addresses and IDs themselves only for
// those that come back (keyTable).
type sessEnd struct {
	t     int64
	frame int64 // the CONNACK's frame number, with the flags above it
	sessKeys
}

// sessKeys are a session's source address and client ID, hashed.
type sessKeys struct {
	src uint64 // hash of the source address
	id  uint64 // hash of the client ID; 0: empty
}

// openSess is an accepted session not yet ended: its CONNACK's frame and
// its keys, by which a sweep keeps the keys of sessions that may still end
// short (a connection let go by its table ends late, its end stamped with
// its last packet, minutes back).
type openSess struct {
	frame int
	sessKeys
}

const (
	endClean   = 1 << 62 // short and ended cleanly
	endAtEnd   = 1 << 61 // still open when the capture ended, begun less than short_session before
	endEvicted = 1 << 60 // let go by the connection table while open: its end is unknown
	endFlags   = endClean | endAtEnd | endEvicted
)

func (e *sessEnd) is(flag int64) bool { return e.frame&flag != 0 }
func (e *sessEnd) frameNum() int      { return int(e.frame &^ endFlags) }

// maxEnds bounds the session ends kept (128 MiB of them). At the bound the
// older half is let go, counted and named in the finding's evidence: watch
// keeps one detector for as long as it runs, and keeping the first ones
// instead stopped it judging any session once a busy broker's 4 Mi had
// ended. (A variable for a test.)
var maxEnds = 1 << 22

// keyTable names the source addresses (or client IDs) judged one by one:
// at most maxKeys of them, each let in at its first session while the
// table is under half full and at its second past that (firstSight; when a
// threshold of one session is set, always at its first). A key seen once
// cannot storm, and a flood of addresses or IDs used once each (spoofed
// SYNs that got through, a botnet's single connects) then cannot fill the
// table before a client that flaps. A session is judged with its key's
// when the key is in the table at the end, whenever the session came.
// A full table lets go of keys that can no longer storm (sweep).
type keyTable[K comparable] struct {
	names   []K
	idx     map[uint64]int32 // hash -> index in names
	seen    firstSight[uint64, struct{}]
	once    bool  // let keys in at their first session
	refused int64 // sessions of keys not in the table once it was full
	gate    sweepGate
	// at is, for each name, the detector's time when a session of it was
	// last reported: sessions are reported late (closed by eviction, or
	// stamped behind after the clock stepped back), and a key whose
	// sessions look old may still be reporting them.
	at []int64
	// gone are the keys the last sweep let go: one that comes back is let
	// in at its first session, to be judged with its kept sessions (past
	// half the table it needed a second, and a storm whose last session
	// came after the sweep was lost: the next review).
	gone map[uint64]struct{}
}

func (k *keyTable[K]) add(h uint64, key K, now int64) {
	if i, ok := k.idx[h]; ok {
		k.at[i] = now
		return
	}
	if len(k.names) >= maxKeys {
		k.refused++
		return
	}
	if _, back := k.gone[h]; !back && !k.once && len(k.names) >= maxKeys/2 {
		if _, again := k.seen.again(h, h, struct{}{}, nil); !again {
			return
		}
	}
	if k.idx == nil {
		k.idx = map[uint64]int32{}
	}
	k.idx[h] = int32(len(k.names))
	k.names = append(k.names, key)
	k.at = append(k.at, now)
}

// keyQuiet is how long ago a key's last session must have ended for sweep
// to let it go: sessions end late (the idle timeout, a connection let go
// by its table), and one ending now may be stamped minutes back.
const keyQuiet = 15 * 60e9

// sweep makes room in a full table before a session of h (not in it),
// ending at now, is added: it lets go of the keys whose kept ends hold
// fewer than min clean short sessions within a minute (as storm counts
// them), so that they are no storm by themselves, whose last session both
// ended and was reported keyQuiet before now, and that have no session
// open (one may yet end short, stamped minutes back: the next review). A
// key let go comes back at its first session (gone), and its kept ends,
// found by their hash, are judged with it again. In a watch, any 100,000
// addresses (or client IDs) that came back over its whole run filled the
// table for good, and a client flapping after them was judged with all
// sources only (TestStormKeysSwept). key is a session's hash of this
// table's kind (0: none). ends are sorted by time here, as Findings sorts
// them.
func (k *keyTable[K]) sweep(h uint64, ends []sessEnd, open map[*pipeline.Session]openSess, key func(*sessKeys) uint64, min int, now int64) {
	if len(k.names) < maxKeys || k.index(h) >= 0 || !k.gate.open(now, 60e9) {
		return
	}
	// Reports come nearly in time order: sorted once here, a key's ends
	// are in order for storm (sorting each key's apart cost up to 27 times
	// the sweep's walk: the next review).
	slices.SortFunc(ends, byTime)
	// A key is judged as Findings judges it (storms): counted over all its
	// kept ends instead, devices that reconnect every few minutes reached
	// min in an hour and were never let go (TestStormKeysSweptPerMinute).
	keep := make([]bool, len(k.names))
	last := make([]int64, len(k.names))
	k.storms(ends, key, func(j int32, at []int32, n int, _, _ int64) {
		keep[j] = isStorm(n, min)
		last[j] = ends[at[len(at)-1]].t
	})
	for _, o := range open {
		if j := k.index(key(&o.sessKeys)); j >= 0 {
			keep[j] = true
		}
	}
	to := make([]int32, len(k.names)) // new index, -1: let go
	n := int32(0)
	for i := range k.names {
		if !keep[i] {
			free := max(last[i], k.at[i]) + keyQuiet
			if free < now {
				to[i] = -1
				continue
			}
			k.gate.wait(free + 1)
		}
		to[i] = n
		k.names[n] = k.names[i]
		k.at[n] = k.at[i]
		n++
	}
	freed := len(k.names) - int(n)
	clear(k.names[n:])
	k.names = k.names[:n]
	k.at = k.at[:n]
	clear(k.gone)
	for h, i := range k.idx {
		if to[i] < 0 {
			delete(k.idx, h)
			if k.gone == nil {
				k.gone = map[uint64]struct{}{}
			}
			k.gone[h] = struct{}{}
		} else {
			k.idx[h] = to[i]
		}
	}
	k.gate.done(freed < maxKeys/8)
}

// storms judges each key of the table with ends kept: fn is given its
// index, its ends (indices into ends, in time order) and storm's count of
// them with the window's bounds. ends are sorted byTime; key is an end's
// hash of this table's kind (0, none, is in no table). Findings and sweep
// judge keys with it alike.
func (k *keyTable[K]) storms(ends []sessEnd, key func(*sessKeys) uint64, fn func(j int32, at []int32, n int, first, last int64)) {
	byKey(ends, len(k.names), func(e *sessEnd) int32 { return k.index(key(&e.sessKeys)) }, func(j int32, at []int32) {
		n, first, last := storm(ends, at)
		fn(j, at, n, first, last)
	})
}

// isStorm reports whether storm's count n is a storm for the threshold min
// (a threshold of 0 still needs one session).
func isStorm(n, min int) bool { return n > 0 && n >= min }

// bySrc and byID are the sessions' keys of the two tables.
func bySrc(k *sessKeys) uint64 { return k.src }
func byID(k *sessKeys) uint64  { return k.id }

// index is h's index in names, or -1.
func (k *keyTable[K]) index(h uint64) int32 {
	if i, ok := k.idx[h]; ok {
		return i
	}
	return -1
}

type connectFlood struct {
	pipeline.Nop
	seed                     maphash.Seed
	end                      int64 // the last frame's time
	short                    int64
	flapping, perSrc, global int
	accepted                 map[*pipeline.Session]openSess
	ends                     []sessEnd
	dropped                  int64 // ends let go at the bound, the older ones
	droppedUntil             int64 // the last of them
	srcs                     keyTable[netip.Addr]
	ids                      keyTable[string]
	clock                    steadyClock // the sessions' ends
}

func newConnectFlood(e *Env) Detector {
	c := &connectFlood{seed: e.hashSeed(), short: e.D("short_session"), flapping: int(e.P("flapping")), perSrc: int(e.P("per_source")),
		global: int(e.P("global")), accepted: map[*pipeline.Session]openSess{}}
	c.srcs.once, c.ids.once = c.perSrc <= 1, c.flapping <= 1
	return c
}

func (*connectFlood) uses() events { return evFrame | evMQTT | evFlow }

func (c *connectFlood) OnFrame(f *pipeline.Frame) {
	if f.TS > c.end {
		c.end = f.TS
	}
}

func (c *connectFlood) OnMQTT(m *pipeline.MQTT) {
	if m.Pkt.Type == mqtt.CONNACK && !m.FromClient && m.Pkt.ReasonCode == 0 && len(c.accepted) < maxKeys {
		o := openSess{frame: m.Frame.Num}
		o.src = maphash.Comparable(c.seed, clientAddr(m)) | 1
		if m.Session.ClientID != "" {
			o.id = maphash.String(c.seed, m.Session.ClientID) | 1
		}
		c.accepted[m.Session] = o
	}
}

// protocolErrors are the anomalies that mark a malformed session.
const protocolErrors = ^(mqtt.AnomalyTruncated | mqtt.AnomalyStreamGap)

func (c *connectFlood) OnFlow(f *pipeline.Flow) {
	if f.Kind != pipeline.FlowClosed || f.Session == nil {
		return
	}
	o, ok := c.accepted[f.Session]
	if !ok {
		return
	}
	delete(c.accepted, f.Session)
	s, conn := f.Session, f.Conn
	e := sessEnd{t: conn.Last, frame: int64(o.frame)}
	clean := s.Anomalies&protocolErrors == 0 && conn.Stat[s.ClientDir].RSTs == 0
	if conn.Reason == tcpstream.ReasonEnd {
		// Still open when the capture ended: a session that began less
		// than short_session before the end may be one of a storm cut
		// short; one that lasted longer is not short.
		if c.end-conn.Start >= c.short {
			return
		}
		e.t, e.frame = c.end, e.frame|endAtEnd
	} else {
		clean = clean && conn.Last-conn.Start < c.short
		if conn.Reason == tcpstream.ReasonEvicted {
			e.frame |= endEvicted
		}
	}
	if len(c.ends) >= maxEnds {
		c.letGoOlder()
	}
	if clean {
		e.frame |= endClean
	}
	c.clock.see(e.t)
	src := conn.Src(s.ClientDir).Addr().Unmap()
	e.src = maphash.Comparable(c.seed, src) | 1 // never 0, which is none
	c.srcs.sweep(e.src, c.ends, c.accepted, bySrc, c.perSrc, c.clock.now)
	c.srcs.add(e.src, src, c.clock.now)
	if s.ClientID != "" {
		e.id = maphash.String(c.seed, s.ClientID) | 1 // never 0, which is no ID
		c.ids.sweep(e.id, c.ends, c.accepted, byID, c.flapping, c.clock.now)
		c.ids.add(e.id, s.ClientID, c.clock.now)
	}
	c.ends = append(c.ends, e)
}

// letGoOlder lets the older half of the ends go.
func (c *connectFlood) letGoOlder() {
	slices.SortFunc(c.ends, byTime)
	half := max(1, len(c.ends)/2)
	c.dropped += int64(half)
	c.droppedUntil = c.ends[half-1].t
	c.ends = append(c.ends[:0], c.ends[half:]...)
}

// byTime orders session ends by time.
func byTime(a, b sessEnd) int { return cmp.Compare(a.t, b.t) }

// storm returns the most clean short sessions ending within the 60 s up
// to any session's end (from the earliest end in them, to the last end at
// its time) when they are at least half of all sessions ending there, with
// the window's bounds. ends are sorted byTime; at is the ends to look at,
// in order (nil: all of them).
//
// A window ends only after all the sessions of its last time: ending among
// them, it left some out, and its count hung on the order of the ends of
// one time (20 not clean and 10 clean ending at once were a storm of 10
// when the clean ones came first; sessions still open at the end all end
// at once: an independent review). A window starting later than the
// earliest end is not tried: sessions not clean early in the minute can
// hide clean ones after them (four at 0-3 s, three clean at 50-52 s: 0). A
// version that tried every start (an independent review) split the
// sessions of one time and took 64 MiB at 4 Mi ends; it was taken back
// (the next review).
func storm(ends []sessEnd, at []int32) (n int, first, last int64) {
	get := func(i int) *sessEnd {
		if at != nil {
			return &ends[at[i]]
		}
		return &ends[i]
	}
	size := len(ends)
	if at != nil {
		size = len(at)
	}
	j, clean := 0, 0
	for i := 0; i < size; i++ {
		e := get(i)
		if e.is(endClean) {
			clean++
		}
		for e.t-get(j).t > 60e9 {
			if get(j).is(endClean) {
				clean--
			}
			j++
		}
		if (i+1 == size || get(i+1).t != e.t) && 2*clean >= i-j+1 && clean > n {
			n, first, last = clean, get(j).t, e.t
		}
	}
	return
}

// byKey calls fn with each key's ends (the indices into ends, in time
// order), keys from 0 up; key(e) < 0 is no key. ends are sorted by time.
func byKey(ends []sessEnd, keys int, key func(*sessEnd) int32, fn func(k int32, at []int32)) {
	// A counting sort: the indices grouped by key, each group in time order.
	// key (a map lookup) is asked once for each end.
	ks := make([]int32, len(ends))
	start := make([]int32, keys+1)
	for i := range ends {
		if ks[i] = key(&ends[i]); ks[i] >= 0 {
			start[ks[i]+1]++
		}
	}
	for k := 1; k <= keys; k++ {
		start[k] += start[k-1]
	}
	at := make([]int32, start[keys])
	next := slices.Clone(start[:keys])
	for i, k := range ks {
		if k >= 0 {
			at[next[k]] = int32(i)
			next[k]++
		}
	}
	for k := 0; k < keys; k++ {
		if start[k] < start[k+1] {
			fn(int32(k), at[start[k]:start[k+1]])
		}
	}
}

func (c *connectFlood) Findings(Models) []Finding {
	if len(c.ends) == 0 {
		return nil
	}
	slices.SortFunc(c.ends, byTime)
	short, atEnd, evicted := 0, 0, 0
	for i := range c.ends {
		e := &c.ends[i]
		if e.is(endClean) {
			short++
		}
		if e.is(endAtEnd) {
			atEnd++
		}
		if e.is(endEvicted) && e.is(endClean) {
			evicted++
		}
	}
	ev := Evidence{Counts: map[string]int64{"short_sessions": int64(short), "sessions": int64(len(c.ends))}}
	var sp span
	srcs, ids := make([]bool, len(c.srcs.names)), make([]bool, len(c.ids.names))
	c.srcs.storms(c.ends, bySrc, func(k int32, at []int32, n int, f, l int64) {
		if isStorm(n, c.perSrc) {
			srcs[k] = true
			sp.add(f)
			sp.add(l)
			ev.Notes = append(ev.Notes, fmt.Sprintf("source %s: %d short sessions within one minute (from %s), %d sessions in all", c.srcs.names[k], n, fmtTime(f), len(at)))
		}
	})
	c.ids.storms(c.ends, byID, func(k int32, _ []int32, n int, f, l int64) {
		if isStorm(n, c.flapping) {
			ids[k] = true
			sp.add(f)
			sp.add(l)
			ev.Notes = append(ev.Notes, fmt.Sprintf("client ID %s flapping: %d sessions within one minute (from %s)", idString(c.ids.names[k]), n, fmtTime(f)))
		}
	})
	if n, f, l := storm(c.ends, nil); isStorm(n, c.global) {
		sp.add(f)
		sp.add(l)
		ev.Notes = append(ev.Notes, fmt.Sprintf("all sources: %d short sessions within one minute (from %s)", n, fmtTime(f)))
	}
	if sp.first == 0 {
		return nil
	}
	if atEnd > 0 {
		ev.Counts["open_at_end"] = int64(atEnd)
		ev.Notes = append(ev.Notes, fmt.Sprintf("%d of the sessions were still open when the capture ended, less than %s after they began: counted as short", atEnd, time.Duration(c.short)))
	}
	if evicted > 0 {
		ev.Counts["evicted_open"] = int64(evicted)
		ev.Notes = append(ev.Notes, fmt.Sprintf("%d of the short sessions were let go by the connection table while still open (more "+
			"connections at once than it holds), their end unknown: counted as short, for their last packet came less than %s after they began",
			evicted, time.Duration(c.short)))
	}
	if c.dropped > 0 {
		ev.Counts["sessions_not_kept"] = c.dropped
		ev.Notes = append(ev.Notes, fmt.Sprintf("%d sessions that ended by %s were let go to keep the %d ended since: not judged", c.dropped, fmtTime(c.droppedUntil), len(c.ends)))
	}
	for _, k := range []struct {
		count, keys, key string
		refused          int64
	}{{"sessions_not_judged_by_address", "addresses", "address", c.srcs.refused},
		{"sessions_not_judged_by_client_id", "client IDs", "client ID", c.ids.refused}} {
		if k.refused > 0 {
			ev.Counts[k.count] = k.refused
			ev.Notes = append(ev.Notes, fmt.Sprintf("more than %d %s came back: %d sessions of the others were judged with all "+
				"sources only, not by their own %s", maxKeys, k.keys, k.refused, k.key))
		}
	}
	sort.Strings(ev.Notes)
	if len(ev.Notes) > 20 {
		ev.Notes = append(ev.Notes[:20], fmt.Sprintf("and %d more", len(ev.Notes)-20))
	}
	var frames exemplars
	shown := map[string]bool{}
	for i := range c.ends {
		e := &c.ends[i]
		if len(frames) >= maxExamples {
			break
		}
		if !e.is(endClean) || e.t < sp.first {
			continue
		}
		if i := c.srcs.index(e.src); i >= 0 && srcs[i] {
			frames.add(e.frameNum())
		} else if i := c.ids.index(e.id); e.id != 0 && i >= 0 && ids[i] {
			frames.add(e.frameNum())
		}
	}
	srcNames := map[string]bool{}
	for k, on := range srcs {
		if on {
			srcNames[c.srcs.names[k].String()] = true
		}
	}
	for k, on := range ids {
		if on {
			shown[idString(c.ids.names[k])] = true
		}
	}
	sort.Ints(frames)
	ev.Sources, ev.ClientIDs, ev.Frames = sorted(srcNames, 20), sorted(shown, 20), frames
	f := newFinding("attack.connect-flood", sp.first, sp.last, ev)
	f.Title = fmt.Sprintf("Connection storm: %d short MQTT sessions", short)
	if len(ev.Sources) > 0 {
		f.Title += " from " + joinShort(ev.Sources, 3)
	}
	return []Finding{f}
}

// --- attack.client-id-takeover -----------------------------------------------

var takeoverSpec = Spec{
	Name: "client-id-takeover",
	IDs:  []string{"attack.client-id-takeover"},
	Rule: "A CONNECT claims a client ID whose session from another source address is still open and alive (it " +
		"sent a packet within 1.5 keep-alive intervals, [MQTT-3.1.2-24]); the broker then drops the older " +
		"session [MQTT-3.1.4-3]. A claim is a takeover when the older session was active within active (it was " +
		"in use, not a device that moved to a new address and left a dead connection behind) or when the ID " +
		"returns to an address that held it before (the victim reconnects and the two fight over the ID). " +
		"min_events takeovers make a finding. Empty client IDs (assigned by the broker) are ignored.",
	Params: []Param{
		{"min_events", 1, "", "takeovers needed"},
		{"active", 10, "s", "the older session sent a packet this recently"},
	},
	New: newTakeover,
}

type liveSess struct {
	conn      *tcpstream.Conn
	src       netip.Addr
	last      int64
	keepalive int64
}

// idState is what a client ID did: lists, not maps, for an ID has one or
// two sessions and addresses as a rule, and a client-ID flood makes 100,000
// of them (two maps each were 57 MB of analyze's memory).
type idState struct {
	live     []liveRef    // its sessions not known to have ended, at most 1000
	past     []netip.Addr // addresses that held the ID, at most 1000
	sessions int32        // CONNECTs seen, up to 2 (sweep)
}

type liveRef struct {
	s *pipeline.Session
	l *liveSess
}

type takeover struct {
	pipeline.Nop
	tab    *sessTable
	min    int
	active int64
	ids    map[string]*idState
	// sweepIn is how many IDs a full table refuses before it is swept again.
	sweepIn int
	events  int64
	claims  int64
	hit     map[string]bool
	srcs    map[string]bool
	span    span
	frames  exemplars
}

func newTakeover(e *Env) Detector {
	return &takeover{tab: e.sessions, min: int(e.P("min_events")), active: e.D("active"), ids: map[string]*idState{}, hit: map[string]bool{}, srcs: map[string]bool{}}
}

func (*takeover) uses() events { return evMQTT | evFlow }

func (t *takeover) OnMQTT(m *pipeline.MQTT) {
	s := m.Session
	if !m.FromClient || s.ClientID == "" {
		return
	}
	now := m.Frame.TS
	if m.Pkt.Type != mqtt.CONNECT {
		if l := t.tab.cur.live; l != nil {
			l.last = now
		}
		return
	}
	st := t.ids[s.ClientID]
	if st == nil {
		if len(t.ids) >= maxKeys && t.sweepIn <= 0 {
			t.sweep()
		}
		if len(t.ids) >= maxKeys {
			t.sweepIn--
			return
		}
		st = &idState{}
		t.ids[s.ClientID] = st
	}
	src := clientAddr(m)
	returning := slices.Contains(st.past, src) // past changes only after the loop
	keep := st.live[:0]
	for _, e := range st.live {
		other, l := e.s, e.l
		if other == s {
			continue // this session's CONNECT again: added anew below
		}
		if other.Disconnect || (l.conn != nil && l.conn.State >= tcpstream.StateClosing) ||
			(l.keepalive != 0 && now-l.last > l.keepalive*3/2) {
			// A session ending, or one the broker has dropped already: it
			// claims nothing now or later, and is forgotten (a client ID
			// reconnecting all day otherwise left every session here to
			// be walked at each CONNECT; profiling analyze of 21.8M frames
			// found this loop at a twelfth of the pass).
			continue
		}
		keep = append(keep, e)
		if l.src == src {
			continue // the same address
		}
		t.claims++
		if now-l.last <= t.active || returning {
			t.events++
			t.hit[idString(s.ClientID)] = true
			if len(t.srcs) < 1000 {
				t.srcs[l.src.String()] = true
				t.srcs[src.String()] = true
			}
			t.span.add(now)
			t.frames.add(m.Frame.Num)
		}
	}
	clear(st.live[len(keep):]) // let go of the sessions forgotten
	st.live = keep
	if len(st.past) < 1000 && !returning {
		st.past = append(st.past, src)
	}
	if len(st.live) < 1000 {
		l := &liveSess{conn: m.Conn, src: src, last: now, keepalive: int64(s.KeepAlive) * 1e9}
		st.live = append(st.live, liveRef{s, l})
		st.sessions = min(st.sessions+1, 2)
		t.tab.cur.live = l
	}
}

// sweep makes room in a full table of client IDs: the IDs seen in one
// session, now ended, go. Clients that pick a new random ID at every
// connect, or a week of them in a watch (one detector for as long as it
// runs), filled it, and a device first seen after that had no protection
// (TestClientIDTakeover). An ID with sessions before keeps the addresses
// that held it, which the "returning" rule needs when its device comes
// back. A sweep that frees less than an eighth of the table is not tried
// again before an eighth has been refused.
func (t *takeover) sweep() {
	n := len(t.ids)
	for id, st := range t.ids {
		if len(st.live) == 0 && st.sessions <= 1 {
			delete(t.ids, id)
		}
	}
	if n-len(t.ids) < maxKeys/8 {
		t.sweepIn = maxKeys / 8
	}
}

func (t *takeover) OnFlow(f *pipeline.Flow) {
	if f.Kind != pipeline.FlowClosed || f.Session == nil || f.Session.ClientID == "" {
		return
	}
	if st := t.ids[f.Session.ClientID]; st != nil {
		if i := slices.IndexFunc(st.live, func(e liveRef) bool { return e.s == f.Session }); i >= 0 {
			st.live = slices.Delete(st.live, i, i+1)
		}
	}
}

func (t *takeover) Findings(Models) []Finding {
	if t.events < int64(max(t.min, 1)) {
		return nil
	}
	ev := Evidence{Counts: map[string]int64{"takeovers": t.events, "claims_of_live_ids": t.claims},
		ClientIDs: sorted(t.hit, 20), Sources: sorted(t.srcs, 20), Frames: t.frames}
	f := newFinding("attack.client-id-takeover", t.span.first, t.span.last, ev)
	f.Title = fmt.Sprintf("Client ID takeover: %s claimed from %d addresses (%d times)", joinShort(ev.ClientIDs, 3), len(t.srcs), t.events)
	return []Finding{f}
}

package detect

import "slices"

// firstSight remembers the first sighting of keys that a table past half
// full has not let in yet, with what came with it, so that they come in at
// their second and lose nothing: a key seen once (a spoofed address, a
// client ID used once) cannot fill the table, and a key that comes back is
// not crowded out by them. The storm, scan and malformed-packet detectors
// keep their sources this way.
//
// It is lossy and bounded: sets of four ways, a set chosen by the key's
// hash, a way of a full set replaced at random (a fixed sequence; the
// hashes are seeded per run, so two runs may let different keys in). Four
// ways, not one: two keys of one set that came in turn pushed each other
// out of a direct-mapped table, and neither ever came in (an independent
// review: 22,115 of 60,000 clients reconnecting in turn were never
// named); at random, not the oldest: five keys of one set coming in turn
// would each push out the next.
type firstSight[K comparable, E any] struct {
	ways []sighting[K, E] // sets of 4, made at the first use
	rnd  uint64
}

type sighting[K comparable, E any] struct {
	key  K
	used bool
	e    E
}

// firstSightSets is the number of sets: 4 × 16,384 keys remembered.
const firstSightSets = 16384

// again reports whether key (of hash h) was seen before, with what came
// then, and forgets it; if not, it remembers key with e. When same is
// given and says the first sighting's e and this one are the same event
// seen again (a SYN to the same target, two events of one packet), it is
// not a second sighting: the first stays remembered.
func (f *firstSight[K, E]) again(h uint64, key K, e E, same func(first, e E) bool) (first E, ok bool) {
	if f.ways == nil {
		f.ways = make([]sighting[K, E], 4*firstSightSets)
	}
	set := int((h >> 32) % firstSightSets) // the high bits: callers may fix the low ones
	ways := f.ways[4*set : 4*set+4]
	for i := range ways {
		if ways[i].used && ways[i].key == key {
			if same != nil && same(ways[i].e, e) {
				return first, false
			}
			first = ways[i].e
			ways[i] = sighting[K, E]{}
			return first, true
		}
	}
	for i := range ways {
		if !ways[i].used {
			ways[i] = sighting[K, E]{key, true, e}
			return first, false
		}
	}
	f.rnd = f.rnd*6364136223846793005 + 1442695040888963407
	ways[f.rnd>>62] = sighting[K, E]{key, true, e}
	return first, false
}

// steadyClock is a detector's time that one event stamped far ahead cannot
// move: the smaller of the last two events' times, never going back. With
// the latest time instead, one record a day ahead (a bad clock, a damaged
// capture) made every entry of a table look old, and a flood or scan under
// way was let go in pieces (independent reviews of 2026-12-03).
type steadyClock struct{ now, last int64 }

// see takes an event's time and reports whether now moved on.
func (c *steadyClock) see(t int64) bool {
	n := min(c.last, t)
	c.last = t
	if n <= c.now {
		return false
	}
	c.now = n
	return true
}

// sweepGate paces the sweeps of a full table: after a sweep that freed
// little (done(true)), the next maxKeys/8 asks are refused until the gate
// opens again at a time it works out. Each such sweep in a row doubles the
// wait from every, up to maxSweepWait (or every, if longer): a table kept
// full of entries that cannot go, asked once a second, was walked once a
// second (an independent review: 40 ms a second, 6.7 hours of CPU for a
// week's capture). But the sweep also tells the gate (wait) when each entry
// it kept only for being recent will be free to go, and when maxKeys/8 of
// them will be before the doubled wait ends, the gate opens then (at least
// every after the sweep): the doubling alone hid floods and scans that
// came while it stayed shut, after chaff that was quiet by then (the next
// review).
type sweepGate struct {
	in     int     // asks to refuse
	at     int64   // the time of the last sweep
	every  int64   // the wait after it, doubled when it freed little
	next   int64   // when to open again
	poor   int     // sweeps in a row that freed little
	pend   []int64 // when the entries kept for being recent are free to go
	sweeps int     // sweeps made (for the tests)
}

// maxSweepWait bounds how long the gate stays shut for the time alone.
const maxSweepWait = 300e9

// open reports whether to sweep now, and if so notes the time.
func (g *sweepGate) open(now, every int64) bool {
	if g.in > 0 && now < g.next {
		g.in--
		return false
	}
	g.at, g.every = now, every
	g.next = now + every
	g.sweeps++
	g.pend = g.pend[:0]
	return true
}

// wait notes, during a sweep, an entry kept for being recent that will be
// free to go at t.
func (g *sweepGate) wait(t int64) { g.pend = append(g.pend, t) }

// done takes the sweep's outcome: poor, it freed too little to be worth
// its walk.
func (g *sweepGate) done(poor bool) {
	if !poor {
		g.poor = 0
		return
	}
	g.in = maxKeys / 8
	g.poor++
	g.next = g.at + min(g.every<<min(g.poor-1, 16), max(g.every, maxSweepWait))
	if len(g.pend) >= maxKeys/8 {
		k := maxKeys/8 - 1
		slices.Sort(g.pend)
		g.next = max(min(g.next, g.pend[k]), g.at+g.every)
	}
}

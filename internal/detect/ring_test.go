package detect

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestRingMatchesFullRing: the ring that keeps only what can still make a
// hit answers "n events within window" as a ring of n times does, on
// bursts and lulls at several rates, and holds few times for a slow key.
func TestRingMatchesFullRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(600)
		window := int64(1+rng.IntN(20)) * 1e9
		r := newRing(n, window)
		var all []int64
		ts := int64(1e12)
		for i := 0; i < 3000; i++ {
			// Lulls, steady rates and bursts.
			switch rng.IntN(3) {
			case 0:
				ts += rng.Int64N(int64(5e9))
			case 1:
				ts += rng.Int64N(int64(1e8))
			default:
				ts += rng.Int64N(int64(1e6))
			}
			all = append(all, ts)
			got := r.add(ts)
			wantHit := len(all) >= n && ts-all[len(all)-n] <= window
			if gotHit := got >= 0 && got <= window; gotHit != wantHit {
				t.Fatalf("trial %d (n %d, window %d): event %d: hit %v, a full ring says %v", trial, n, window, i, gotHit, wantHit)
			}
			if wantHit && got != ts-all[len(all)-n] {
				t.Fatalf("trial %d: span %d, want %d", trial, got, ts-all[len(all)-n])
			}
		}
	}
	slow := newRing(500, 10e9)
	for i := int64(0); i < 100000; i++ {
		slow.add(i * 1e9) // one a second for a day and more
	}
	if len(slow.ts) > 16 {
		t.Errorf("a source at one event a second holds %d times, want at most 16", len(slow.ts))
	}
}

// TestJoinSet: a title counts the whole set, not the list sorted cut (a
// scan by 100 sources was "a, b, c and 18 more"), and a member that reads
// like sorted's "+N more" is only a member.
func TestJoinSet(t *testing.T) {
	set := map[string]bool{}
	for i := range 100 {
		set[fmt.Sprintf("10.9.0.%d", i)] = true
	}
	if got, want := joinSet(set, 3), "10.9.0.0, 10.9.0.1, 10.9.0.10 and 97 more"; got != want {
		t.Errorf("joinSet of 100 = %q, want %q", got, want)
	}
	for _, c := range []struct {
		set  map[string]bool
		want string
	}{
		{map[string]bool{"+999 more": true}, "+999 more"},
		{map[string]bool{"a": true, "+5 more": true}, "+5 more, a"},
		{map[string]bool{"a": true, "b": true}, "a, b"},
	} {
		if got := joinSet(c.set, 3); got != c.want {
			t.Errorf("joinSet(%v) = %q, want %q", c.set, got, c.want)
		}
	}
}

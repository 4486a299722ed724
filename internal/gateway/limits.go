package gateway

import (
	"encoding/json"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"
)

// window counts events in a sliding window (the last n event times).
type window struct {
	ts   []int64
	next int
	n    int
}

func newWindow(n int) *window { return &window{ts: make([]int64, max(n, 1))} }

// add records an event at now and returns how many of the kept events lie
// within span of it.
func (w *window) add(now time.Time, span time.Duration) int {
	t := now.UnixNano()
	w.ts[w.next] = t
	w.next = (w.next + 1) % len(w.ts)
	if w.n < len(w.ts) {
		w.n++
	}
	c := 0
	for i := 0; i < w.n; i++ {
		if t-w.ts[i] <= int64(span) {
			c++
		}
	}
	return c
}

// bucket is a token bucket: rate per second, burst twice the rate.
type bucket struct {
	tokens float64
	last   time.Time
	rate   float64
}

func newBucket(rate float64) *bucket { return &bucket{tokens: 2 * rate, rate: rate} }

// take removes n tokens if it can.
func (b *bucket) take(now time.Time, n float64) bool {
	if !b.last.IsZero() {
		b.tokens = min(2*b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// Ban is one active ban.
type Ban struct {
	Key    string    `json:"key"` // "ip:10.0.0.7" or "identity:bed1-ecg"
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// maxBans bounds the ban table: past it, the bans closest to their end
// give way (an address-spraying storm cannot grow it without end).
const maxBans = 100000

// bans holds the active bans, persisted to a file (written at most once a
// second, and at shutdown) so that a restart keeps them.
type bans struct {
	mu    sync.Mutex
	m     map[string]Ban
	file  string
	log   *slog.Logger
	dirty bool
	timer *time.Timer
}

func newBans(file string, log *slog.Logger) *bans {
	b := &bans{m: map[string]Ban{}, file: file, log: log}
	if file != "" {
		data, err := os.ReadFile(file)
		switch {
		case err == nil:
			var list []Ban
			if err := json.Unmarshal(data, &list); err != nil {
				log.Warn("gateway: bans file unreadable; starting without its bans", "file", file, "error", err)
			}
			now := time.Now()
			for _, x := range list {
				if x.Until.After(now) && checkBanKey(x.Key) == nil && len(b.m) < maxBans {
					b.m[x.Key] = x
				}
			}
		case !os.IsNotExist(err):
			log.Warn("gateway: bans file unreadable; starting without its bans", "file", file, "error", err)
		}
	}
	return b
}

// banned returns the ban on key, if one is active at now.
func (b *bans) banned(key string, now time.Time) (Ban, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.m[key]
	if ok && now.After(x.Until) {
		delete(b.m, key)
		return Ban{}, false
	}
	return x, ok
}

func (b *bans) add(key, reason string, now time.Time, d time.Duration) Ban {
	x := Ban{Key: key, Until: now.Add(d), Reason: reason, Since: now}
	b.put(x)
	return x
}

// put records a ban (made here or shared by another gateway).
func (b *bans) put(x Ban) {
	b.mu.Lock()
	if _, ok := b.m[x.Key]; !ok && len(b.m) >= maxBans {
		b.evictLocked(time.Now())
	}
	b.m[x.Key] = x
	b.mu.Unlock()
	b.save()
}

// evictLocked drops the expired bans, then the one ending soonest.
func (b *bans) evictLocked(now time.Time) {
	var soonest string
	var end time.Time
	for k, x := range b.m {
		if now.After(x.Until) {
			delete(b.m, k)
			continue
		}
		if soonest == "" || x.Until.Before(end) {
			soonest, end = k, x.Until
		}
	}
	if len(b.m) >= maxBans {
		delete(b.m, soonest)
	}
}

// lift removes a ban; it reports whether there was one.
func (b *bans) lift(key string) bool {
	b.mu.Lock()
	_, ok := b.m[key]
	delete(b.m, key)
	b.mu.Unlock()
	if ok {
		b.save()
	}
	return ok
}

func (b *bans) list(now time.Time) []Ban {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []Ban{}
	for k, x := range b.m {
		if now.After(x.Until) {
			delete(b.m, k)
			continue
		}
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// save schedules a write of the file within a second.
func (b *bans) save() {
	if b.file == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dirty = true
	if b.timer == nil {
		b.timer = time.AfterFunc(time.Second, b.flush)
	}
}

// flush writes the file now if it changed.
func (b *bans) flush() {
	b.mu.Lock()
	b.timer = nil
	if !b.dirty || b.file == "" {
		b.mu.Unlock()
		return
	}
	b.dirty = false
	b.mu.Unlock()
	data, err := json.MarshalIndent(b.list(time.Now()), "", " ")
	if err != nil {
		return
	}
	tmp := b.file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		b.log.Warn("gateway: saving bans", "error", err)
		return
	}
	if err := os.Rename(tmp, b.file); err != nil {
		b.log.Warn("gateway: saving bans", "error", err)
	}
}

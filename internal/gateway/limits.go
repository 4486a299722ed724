package gateway

import (
	"encoding/json"
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

// bans holds the active bans, optionally persisted to a file.
type bans struct {
	mu   sync.Mutex
	m    map[string]Ban
	file string
}

func newBans(file string) *bans {
	b := &bans{m: map[string]Ban{}, file: file}
	if file != "" {
		if data, err := os.ReadFile(file); err == nil {
			var list []Ban
			if json.Unmarshal(data, &list) == nil {
				for _, x := range list {
					b.m[x.Key] = x
				}
			}
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
	b.mu.Lock()
	x := Ban{Key: key, Until: now.Add(d), Reason: reason, Since: now}
	b.m[key] = x
	b.mu.Unlock()
	b.save()
	return x
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
	var out []Ban
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

func (b *bans) save() {
	if b.file == "" {
		return
	}
	data, err := json.MarshalIndent(b.list(time.Now()), "", " ")
	if err != nil {
		return
	}
	tmp := b.file + ".tmp"
	if os.WriteFile(tmp, data, 0o600) == nil {
		os.Rename(tmp, b.file)
	}
}

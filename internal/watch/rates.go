package watch

import (
	"github.com/iomtguard/iomtguard/internal/mqtt"
)

// rates counts frames and MQTT packets by type per second of capture time,
// over the last n seconds (a ring).
type rates struct {
	n      int
	last   int64 // the second of the ring's newest slot
	frames []float64
	mq     [16][]float64
}

func newRates(n int) *rates {
	r := &rates{n: n, frames: make([]float64, n)}
	for i := range r.mq {
		r.mq[i] = make([]float64, n)
	}
	return r
}

// at advances the ring to second s and returns its slot (-1: too old).
func (r *rates) at(ts int64) int {
	s := ts / 1e9
	if r.last == 0 {
		r.last = s
	}
	if s > r.last {
		for x := r.last + 1; x <= s && x-r.last <= int64(r.n); x++ {
			i := int(x % int64(r.n))
			r.frames[i] = 0
			for t := range r.mq {
				r.mq[t][i] = 0
			}
		}
		if s-r.last > int64(r.n) {
			for i := range r.frames {
				r.frames[i] = 0
				for t := range r.mq {
					r.mq[t][i] = 0
				}
			}
		}
		r.last = s
	}
	if r.last-s >= int64(r.n) {
		return -1
	}
	return int(s % int64(r.n))
}

func (r *rates) frame(ts int64) {
	if i := r.at(ts); i >= 0 {
		r.frames[i]++
	}
}

func (r *rates) mqtt(ts int64, t mqtt.Type) {
	if i := r.at(ts); i >= 0 {
		r.mq[t&15][i]++
	}
}

func (r *rates) tick(ts int64) { r.at(ts) }

// view returns the last n seconds, oldest first, ending at the ring's
// newest second (which is still filling).
func (r *rates) view() (frames []float64, byType map[string][]float64, end int64) {
	order := func(ring []float64) []float64 {
		out := make([]float64, r.n)
		for k := 0; k < r.n; k++ {
			out[k] = ring[int((r.last-int64(r.n-1)+int64(k))%int64(r.n)+int64(r.n))%r.n]
		}
		return out
	}
	frames = order(r.frames)
	byType = map[string][]float64{}
	for t, ring := range r.mq {
		any := false
		for _, v := range ring {
			if v != 0 {
				any = true
				break
			}
		}
		if any {
			byType[mqtt.Type(t).String()] = order(ring)
		}
	}
	return frames, byType, r.last
}

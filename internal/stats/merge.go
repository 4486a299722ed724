package stats

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
)

// DescriberState is a Describer as plain values, for storage and for
// sending to a hub: its moments, the small integers as sparse counts, the
// other values held, and the sketch (levels of weight 2^h) once there is
// one. Merging the Describers of the parts of a capture gives the
// Describer of the whole: exactly while no part outgrew its cap, within
// the sketch's rank error otherwise.
type DescriberState struct {
	N      int64           `json:"n"`
	MinMax [2]float64      `json:"minmax"`
	Sum    [2]float64      `json:"sum"` // Neumaier sum and its compensation
	Small  map[int32]int64 `json:"small,omitempty"`
	Vals   []float64       `json:"vals,omitempty"`
	Sketch [][]float64     `json:"sketch,omitempty"`
	// Moments is the mean and the sum of squared deviations of all N
	// values, kept when Sketch is set (the values themselves are not).
	Moments [2]float64 `json:"moments,omitempty"`
}

// State returns d as plain values (sharing nothing with d).
func (d *Describer) State() DescriberState {
	if d.sketch == nil && int64(len(d.vals)+d.nMore)+d.counted.total > int64(d.limit()) {
		// More values than the cap, most of them counted: written out
		// they would take 8 bytes each (an hour of a busy ward's deltas),
		// so the state carries them sketched, as it would have had d held
		// them; d itself stays exact.
		sk, mean, m2 := d.sketchOf()
		return DescriberState{N: d.n, MinMax: [2]float64{d.min, d.max}, Sum: [2]float64{d.sum, d.sumC},
			Sketch: sk.levelsCopy(), Moments: [2]float64{mean, m2}}
	}
	d.settle()
	st := DescriberState{N: d.n, MinMax: [2]float64{d.min, d.max}, Sum: [2]float64{d.sum, d.sumC}}
	if d.nSmall > 0 {
		st.Small = make(map[int32]int64, len(d.touched))
		for _, i := range d.touched {
			if c := d.count(int(i)); c != 0 {
				st.Small[i] = c
			}
		}
	}
	st.Vals = d.heldSorted()
	if d.sketch != nil {
		st.Sketch = d.sketch.levelsCopy()
		st.Moments = [2]float64{d.shift + d.welfordM, d.welfordM2}
	}
	return st
}

// levelsCopy is the sketch's levels, copied (at least one, maybe empty: a
// state with a sketch says so by a non-nil Sketch).
func (s *kll) levelsCopy() [][]float64 {
	var out [][]float64
	for _, lv := range s.levels {
		out = append(out, slices.Clone(lv))
	}
	if len(out) == 0 {
		out = [][]float64{{}}
	}
	return out
}

// Sketched is st with its held values moved into a sketch (the small
// integers stay counted exactly): a few kilobytes however many values st
// held, with quartiles within SketchRankError. A sensor sends a minute
// sketched when its values would not fit in one message to its hub.
func (st DescriberState) Sketched() DescriberState {
	if st.Sketch != nil || len(st.Vals) == 0 {
		return st
	}
	d := &Describer{Cap: 1}
	d.MergeState(st)
	if d.sketch == nil {
		d.toSketch()
	}
	return d.State()
}

// FromState makes a Describer from its state.
func FromState(st DescriberState) *Describer {
	d := &Describer{}
	d.MergeState(st)
	return d
}

// moments returns the count, mean and sum of squared deviations of what d
// holds.
func (d *Describer) moments() (n int64, mean, m2 float64) {
	if d.n == 0 {
		return 0, 0, 0
	}
	d.settle()
	if d.sketch != nil {
		return d.n, d.shift + d.welfordM, d.welfordM2
	}
	mean = d.mean()
	d.each(func(v float64, c int64) {
		dv := v - mean
		m2 += float64(c) * dv * dv
	})
	return d.n, mean, m2
}

// MergeState adds the values st describes to d.
func (d *Describer) MergeState(st DescriberState) {
	d.refined = nil
	if st.N == 0 {
		return
	}
	if st.Sketch == nil && d.sketch == nil {
		// Both hold their values: add them (the extremes and the sum are
		// computed from the values when needed).
		d.n += st.N
		for v, c := range st.Small {
			if v >= 0 && v < smallInts {
				d.addSmall(int(v), c)
			}
		}
		for _, v := range st.Vals {
			d.keep(v)
		}
		if d.Held() > d.limit() {
			d.toSketch()
		}
		return
	}
	// At least one side is sketched.
	an, amean, am2 := d.moments()
	aSketch := d.sketch != nil
	// Count, extremes and sum.
	if d.n == 0 {
		d.min, d.max = st.MinMax[0], st.MinMax[1]
	} else {
		d.min, d.max = math.Min(d.min, st.MinMax[0]), math.Max(d.max, st.MinMax[1])
	}
	d.n += st.N
	for _, v := range st.Sum {
		d.addSum(v)
	}
	// Merge the sketches and combine the moments (Chan et al.'s parallel
	// formula).
	bn, bmean, bm2 := st.N, 0.0, 0.0
	if st.Sketch != nil {
		bmean, bm2 = st.Moments[0], st.Moments[1]
	} else {
		tmp := &Describer{}
		tmp.MergeState(DescriberState{N: st.N, MinMax: st.MinMax, Sum: st.Sum, Small: st.Small, Vals: st.Vals})
		_, bmean, bm2 = tmp.moments()
	}
	// A value counted c times goes in with its weight (addN), as in
	// toSketch: a counted column's values number in the millions.
	if !aSketch {
		held := d.n - st.N // what d held before, exactly
		d.sketch = newKLL(2048)
		if held > 0 {
			top := d.sketch.topLevel(d.n)
			d.each(func(v float64, c int64) { d.sketch.addN(v, c, top) })
		}
		d.dropHeld()
	}
	if st.Sketch != nil {
		d.sketch.merge(st.Sketch)
	} else {
		top := d.sketch.topLevel(d.n)
		for _, v := range slices.Sorted(maps.Keys(st.Small)) { // in order: the same sketch for the same state
			d.sketch.addN(float64(v), st.Small[v], top)
		}
		for _, v := range st.Vals {
			d.sketch.add(v)
		}
	}
	n := an + bn
	delta := bmean - amean
	mean := amean + delta*float64(bn)/float64(n)
	m2 := am2 + bm2 + delta*delta*float64(an)*float64(bn)/float64(n)
	if an == 0 {
		mean, m2 = bmean, bm2
	}
	d.shift, d.welfordM, d.welfordM2 = mean, 0, m2
}

// Merge adds o's values to d.
func (d *Describer) Merge(o *Describer) { d.MergeState(o.State()) }

// merge adds the levels of another sketch (level h items weigh 2^h), then
// compacts.
func (s *kll) merge(levels [][]float64) {
	for h, lv := range levels {
		for len(s.levels) <= h {
			s.levels = append(s.levels, nil)
		}
		s.levels[h] = append(s.levels[h], lv...)
	}
	for h := 0; h < len(s.levels); h++ {
		for len(s.levels[h]) >= s.capacity(h) {
			if h+1 == len(s.levels) {
				s.levels = append(s.levels, nil)
			}
			lv := s.levels[h]
			slices.Sort(lv)
			off := 0
			if s.flip {
				off = 1
			}
			s.flip = !s.flip
			// An even number of items is compacted: every other one goes up
			// with twice the weight; an odd last item stays.
			even := len(lv) &^ 1
			for i := off; i < even; i += 2 {
				s.levels[h+1] = append(s.levels[h+1], lv[i])
			}
			if even < len(lv) {
				s.levels[h] = append(lv[:0], lv[even])
			} else {
				s.levels[h] = lv[:0]
			}
		}
	}
}

// Shifted returns the state of the same values plus delta (a relative time
// measured from another origin). Small integers that stop being small
// integers move to the held values.
func (st DescriberState) Shifted(delta float64) DescriberState {
	if delta == 0 || st.N == 0 {
		return st
	}
	out := st
	out.MinMax = [2]float64{st.MinMax[0] + delta, st.MinMax[1] + delta}
	out.Sum = [2]float64{st.Sum[0] + float64(st.N)*delta, st.Sum[1]}
	out.Small, out.Vals = nil, nil
	for v, c := range st.Small {
		x := float64(v) + delta
		if x >= 0 && x < smallInts && x == math.Trunc(x) {
			if out.Small == nil {
				out.Small = map[int32]int64{}
			}
			out.Small[int32(x)] += c
			continue
		}
		for i := int64(0); i < c; i++ {
			out.Vals = append(out.Vals, x)
		}
	}
	for _, v := range st.Vals {
		out.Vals = append(out.Vals, v+delta)
	}
	if st.Sketch != nil {
		out.Sketch = make([][]float64, len(st.Sketch))
		for h, lv := range st.Sketch {
			out.Sketch[h] = make([]float64, len(lv))
			for i, v := range lv {
				out.Sketch[h][i] = v + delta
			}
		}
		out.Moments = [2]float64{st.Moments[0] + delta, st.Moments[1]}
	}
	return out
}

// Light is the state without the values (counts and sums only survive):
// what a window keeps of a column it does not show.
func (st DescriberState) Light() DescriberState { return DescriberState{} }

// The held values travel compactly: values that are whole nanoseconds (the
// time columns: frame and TCP deltas, relative times) are sent as sorted
// nanosecond counts, delta- and varint-encoded ("vals_ns"); others as
// floats. A minute of a busy ward holds thousands of them: this is most of
// the history's size.
type describerJSON struct {
	N       int64           `json:"n"`
	MinMax  [2]float64      `json:"minmax"`
	Sum     [2]float64      `json:"sum"`
	Small   map[int32]int64 `json:"small,omitempty"`
	Vals    []float64       `json:"vals,omitempty"`
	ValsNS  []byte          `json:"vals_ns,omitempty"`
	Sketch  [][]float64     `json:"sketch,omitempty"`
	Moments [2]float64      `json:"moments,omitempty"`
}

// MarshalJSON writes the state compactly (see describerJSON).
func (st DescriberState) MarshalJSON() ([]byte, error) {
	j := describerJSON{N: st.N, MinMax: st.MinMax, Sum: st.Sum, Small: st.Small, Sketch: st.Sketch, Moments: st.Moments}
	if ns, ok := wholeNanos(st.Vals); ok && len(ns) > 0 {
		slices.Sort(ns)
		var prev int64
		buf := make([]byte, 0, 4*len(ns))
		for i, v := range ns {
			if i == 0 {
				buf = binary.AppendVarint(buf, v)
			} else {
				buf = binary.AppendUvarint(buf, uint64(v-prev))
			}
			prev = v
		}
		j.ValsNS = buf
	} else {
		j.Vals = st.Vals
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (st *DescriberState) UnmarshalJSON(b []byte) error {
	var j describerJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*st = DescriberState{N: j.N, MinMax: j.MinMax, Sum: j.Sum, Small: j.Small, Vals: j.Vals, Sketch: j.Sketch, Moments: j.Moments}
	if len(j.ValsNS) > 0 {
		buf := j.ValsNS
		var prev int64
		for first := true; len(buf) > 0; first = false {
			var v int64
			var k int
			if first {
				v, k = binary.Varint(buf)
			} else {
				var d uint64
				d, k = binary.Uvarint(buf)
				v = prev + int64(d)
			}
			if k <= 0 {
				return errors.New("stats: describer state: bad vals_ns")
			}
			buf = buf[k:]
			st.Vals = append(st.Vals, float64(v)/1e9)
			prev = v
		}
	}
	return nil
}

// wholeNanos returns the values as nanosecond counts when each is one
// exactly (float64(n)/1e9 gives it back).
func wholeNanos(vals []float64) ([]int64, bool) {
	out := make([]int64, len(vals))
	for i, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 9e6 {
			return nil, false
		}
		n := int64(math.Round(v * 1e9))
		if float64(n)/1e9 != v {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

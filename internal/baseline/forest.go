package baseline

import (
	"errors"
	"math"
	"math/rand/v2"
)

// Forest is an isolation forest (Liu, Ting and Zhou, ICDM 2008): random
// axis-parallel cuts isolate an unusual point in fewer cuts than a usual
// one; the score 2^(-E[h]/c(psi)) is near 1 for points isolated at once
// and at most about 0.5 for ordinary ones.
type Forest struct {
	Sample int    `json:"sample"` // psi: points per tree
	Trees  []Tree `json:"trees"`
}

// Tree is one isolation tree, its nodes in an array (node 0 the root).
type Tree struct {
	Nodes []Node `json:"nodes"`
}

// Node is a cut (Feature >= 0: left when x[Feature] < Cut) or a leaf
// holding Size points (Feature < 0).
type Node struct {
	Feature int     `json:"f"`
	Cut     float64 `json:"c,omitempty"`
	Left    int32   `json:"l,omitempty"`
	Right   int32   `json:"r,omitempty"`
	Size    int     `json:"n,omitempty"`
}

// TrainForest grows trees isolation trees on samples of psi points of xs
// (every point the same dimension), deterministically from seed.
func TrainForest(xs [][]float64, trees, psi int, seed uint64) (*Forest, error) {
	if len(xs) < 2 {
		return nil, errors.New("baseline: too few windows to train on (at least 2 are needed)")
	}
	psi = min(psi, len(xs))
	rng := rand.New(rand.NewPCG(seed, 0x1f0e57))
	f := &Forest{Sample: psi}
	limit := int(math.Ceil(math.Log2(float64(psi))))
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	for t := 0; t < trees; t++ {
		// A sample without replacement: a partial shuffle.
		for i := 0; i < psi; i++ {
			j := i + rng.IntN(len(idx)-i)
			idx[i], idx[j] = idx[j], idx[i]
		}
		sample := make([]int, psi)
		copy(sample, idx[:psi])
		var tr Tree
		grow(&tr, xs, sample, 0, limit, rng)
		f.Trees = append(f.Trees, tr)
	}
	return f, nil
}

func grow(tr *Tree, xs [][]float64, pts []int, depth, limit int, rng *rand.Rand) int32 {
	me := int32(len(tr.Nodes))
	tr.Nodes = append(tr.Nodes, Node{Feature: -1, Size: len(pts)})
	if depth >= limit || len(pts) <= 1 {
		return me
	}
	// A feature on which the points differ, then a cut between their extremes.
	dim := len(xs[pts[0]])
	for try := 0; try < 2*dim; try++ {
		f := rng.IntN(dim)
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range pts {
			lo, hi = min(lo, xs[p][f]), max(hi, xs[p][f])
		}
		if !(hi > lo) {
			continue
		}
		cut := lo + rng.Float64()*(hi-lo)
		var left, right []int
		for _, p := range pts {
			if xs[p][f] < cut {
				left = append(left, p)
			} else {
				right = append(right, p)
			}
		}
		if len(left) == 0 || len(right) == 0 {
			continue
		}
		l := grow(tr, xs, left, depth+1, limit, rng)
		r := grow(tr, xs, right, depth+1, limit, rng)
		tr.Nodes[me] = Node{Feature: f, Cut: cut, Left: l, Right: r}
		return me
	}
	return me // the points are identical on every feature tried
}

// avgPath is c(n), the average path length of an unsuccessful search in a
// binary search tree of n points: what a leaf of n points adds.
func avgPath(n int) float64 {
	if n <= 1 {
		return 0
	}
	if n == 2 {
		return 1
	}
	return 2*(math.Log(float64(n-1))+0.5772156649015329) - 2*float64(n-1)/float64(n)
}

// Score is x's anomaly score in (0, 1].
func (f *Forest) Score(x []float64) float64 {
	if f == nil || len(f.Trees) == 0 {
		return 0
	}
	var sum float64
	for i := range f.Trees {
		nodes := f.Trees[i].Nodes
		var h float64
		k := int32(0)
		for {
			n := &nodes[k]
			if n.Feature < 0 {
				h += avgPath(n.Size)
				break
			}
			h++
			if n.Feature < len(x) && x[n.Feature] < n.Cut {
				k = n.Left
			} else {
				k = n.Right
			}
		}
		sum += h
	}
	return math.Pow(2, -sum/float64(len(f.Trees))/avgPath(f.Sample))
}

// check verifies a forest read from a file: every child index in range and
// below its parent's (no cycle), so that Score ends.
func (f *Forest) check(dim int) error {
	if f.Sample < 2 || len(f.Trees) == 0 {
		return errors.New("baseline: the forest is empty")
	}
	for _, t := range f.Trees {
		for i, n := range t.Nodes {
			if n.Feature < 0 {
				continue
			}
			if n.Feature >= dim || int(n.Left) <= i || int(n.Right) <= i || int(n.Left) >= len(t.Nodes) || int(n.Right) >= len(t.Nodes) ||
				math.IsNaN(n.Cut) {
				return errors.New("baseline: the forest is damaged")
			}
		}
		if len(t.Nodes) == 0 {
			return errors.New("baseline: a tree is empty")
		}
	}
	return nil
}

package analysis

import (
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/stats"
)

// ColumnRefiner is the consumer of a second pass over the same inputs that
// makes the quartiles of the columns past their cap exact (stats.Refiner):
// it derives each frame's values as the first pass did (fillRec, rowValues)
// and gives them to the sketched columns' refiners.
type ColumnRefiner struct {
	pipeline.Nop
	all, mq   [nFields]*stats.Refiner
	frameMQTT bool
	firstLen  int
	rec       frameRec
	add       func(i int, v float64)
}

// Refiner returns the consumer of a second pass that makes the sketched
// columns' quartiles exact, its brackets keeping at most maxDistinct
// distinct values together, or nil when every column is exact.
func (a *Analyzer) Refiner(maxDistinct int) *ColumnRefiner {
	a.syncColumns()
	c := &ColumnRefiner{}
	budget := &stats.Budget{Left: maxDistinct}
	found := false
	for i := range a.all {
		c.all[i], c.mq[i] = a.all[i].Refiner(budget), a.mq[i].Refiner(budget)
		found = found || c.all[i] != nil || c.mq[i] != nil
	}
	if !found {
		return nil
	}
	c.add = func(i int, v float64) {
		if r := c.all[i]; r != nil {
			r.Add(v)
		}
		if r := c.mq[i]; r != nil && c.frameMQTT {
			r.Add(v)
		}
	}
	return c
}

// OnMQTT notes that the frame carries MQTT, as the analyzer does.
func (c *ColumnRefiner) OnMQTT(ev *pipeline.MQTT) {
	if !c.frameMQTT {
		c.frameMQTT, c.firstLen = true, ev.Pkt.RemainingLength
	}
}

// OnFrame gives the frame's values to the refiners.
func (c *ColumnRefiner) OnFrame(f *pipeline.Frame) {
	if f.Row != nil {
		rowValues(f.Row, c.add)
	} else {
		fillRec(&c.rec, f, c.frameMQTT, c.firstLen)
		c.rec.columns(c.add)
	}
	c.frameMQTT = false
}

// Refine makes the sketched columns' quartiles exact from c, filled by a
// second pass over the same inputs. It returns the columns made exact and
// those left as the sketch's (their values differed on the second pass, or
// a bracket held more than its budget), named as in describe_fields, with
// " (MQTT frames)" for the MQTT-only ones.
func (a *Analyzer) Refine(c *ColumnRefiner) (exact, missed []string) {
	a.syncColumns()
	for i, name := range describeFields {
		for _, d := range []struct {
			des  *stats.Describer
			r    *stats.Refiner
			name string
		}{{&a.all[i], c.all[i], name}, {&a.mq[i], c.mq[i], name + " (MQTT frames)"}} {
			if d.r == nil {
				continue
			}
			if d.des.Refine(d.r) {
				exact = append(exact, d.name)
			} else {
				missed = append(missed, d.name)
			}
		}
	}
	return exact, missed
}

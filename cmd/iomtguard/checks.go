package main

import (
	"fmt"
	"math"
	"time"
)

// Flag checks shared by the commands: each returns a usage error (exit
// code 2) naming the flag, the range and the value given.

func checkInt(flag string, v, lo, hi int) error {
	if v < lo || v > hi {
		return usageError{fmt.Errorf("--%s: want %d to %d, not %d", flag, lo, hi, v)}
	}
	return nil
}

// checkOpen checks lo < v < hi (a coverage, a share).
func checkOpen(flag string, v, lo, hi float64) error {
	if !(v > lo && v < hi) {
		return usageError{fmt.Errorf("--%s: want a value strictly between %g and %g, not %g", flag, lo, hi, v)}
	}
	return nil
}

// checkPositive checks 0 < v <= hi and that v is a number.
func checkPositive(flag string, v, hi float64) error {
	if math.IsNaN(v) || !(v > 0) || v > hi {
		return usageError{fmt.Errorf("--%s: want a positive number up to %g, not %g", flag, hi, v)}
	}
	return nil
}

func checkDuration(flag string, d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return usageError{fmt.Errorf("--%s: want %s to %s, not %s", flag, fmtDur(lo), fmtDur(hi), d)}
	}
	return nil
}

// fmtDur writes a duration without trailing zero units (24h, not 24h0m0s).
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Second && d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

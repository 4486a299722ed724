//go:build race

package main

// raceEnabled scales down the tests that repeat one check thousands of
// times: the race detector slows them about tenfold, and the plain run
// already covers the full count.
const raceEnabled = true

//go:build !race

package suggest

const raceOn = false

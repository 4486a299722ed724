//go:build race

package gateway_test

// rssScale: the race detector multiplies memory (shadow memory) 5 to 10 times.
const rssScale = 5

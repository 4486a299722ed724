//go:build !race

package gateway_test

const rssScale = 1

// Package demo holds the built-in demo capture that `iomtguard analyze` reads
// when it is given no file: ten minutes of a simulated two-bed ICU (the IoT
// Healthcare Security Dataset's devices, see package sim) with a brute-force
// login, a wildcard subscription and a slow DoS from 08:05 to 08:06, and
// control units that publish retained patient records. Its ground truth is
// Labels, in the form `iomtguard eval` reads.
//
// Regenerate both with `go generate ./internal/demo` (the simulator is
// deterministic: the same command gives the same bytes).
package demo

import (
	"bytes"
	_ "embed"
	"io"
)

//go:generate go run ../../cmd/iomtguard simulate --scenario icu --duration 10m --seed 1 --attack bruteforce,wildcard-subscribe,slow-dos --attack-start 5m --attack-duration 1m --retain-phi --labels icu-demo.labels.yaml -o icu-demo.pcapng.gz

// Name is the demo capture's file name, as reports and labels name it.
const Name = "icu-demo.pcapng.gz"

//go:embed icu-demo.pcapng.gz
var capture []byte

// Labels is the ground truth of the demo capture (YAML).
//
//go:embed icu-demo.labels.yaml
var Labels []byte

// Open returns the demo capture (gzip-compressed pcapng).
func Open() io.Reader { return bytes.NewReader(capture) }

// Size is the compressed size of the demo capture in bytes.
func Size() int { return len(capture) }

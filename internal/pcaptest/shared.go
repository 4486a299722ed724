package pcaptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// SharedDir returns the path of ../shared (the read-only material beside the
// project) or skips the test with a message when it is absent, as it is in a
// user's fresh clone.
func SharedDir(tb testing.TB) string {
	tb.Helper()
	dir := sharedDir()
	if dir == "" {
		tb.Skip("../shared is absent (a fresh clone): skipping a test that needs the shared captures")
	}
	return dir
}

func sharedDir() string {
	if d := os.Getenv("IOMTGUARD_SHARED"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	// internal/pcaptest/shared.go -> repository root -> ../shared
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	d := filepath.Join(root, "..", "shared")
	if st, err := os.Stat(filepath.Join(d, "data", "captures")); err == nil && st.IsDir() {
		return d
	}
	return ""
}

// SharedCapture returns the path of a capture in ../shared/data/captures.
func SharedCapture(tb testing.TB, name string) string {
	return filepath.Join(SharedDir(tb), "data", "captures", name)
}

var bigOnce sync.Once
var bigPath string
var bigErr error

// BenchCapture returns the 1.09M-frame benchmark capture: $IOMTGUARD_BENCH_CAPTURE,
// or one built once with ../shared/tools/replicate_pcap.py (100 copies of
// benign.pcap, 600 s apart) in the temporary directory. It skips when neither
// is possible.
func BenchCapture(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("IOMTGUARD_BENCH_CAPTURE"); p != "" {
		return p
	}
	shared := SharedDir(tb)
	bigOnce.Do(func() {
		bigPath = filepath.Join(os.TempDir(), "iomtguard-big-benign.pcap")
		if st, err := os.Stat(bigPath); err == nil && st.Size() > 90e6 {
			return
		}
		py := "python3"
		if _, err := os.Stat("/usr/bin/python3"); err == nil {
			py = "/usr/bin/python3"
		}
		tmp := bigPath + ".tmp"
		cmd := exec.Command(py, filepath.Join(shared, "tools", "replicate_pcap.py"),
			filepath.Join(shared, "data", "captures", "benign.pcap"), tmp, "100", "600")
		if out, err := cmd.CombinedOutput(); err != nil {
			bigErr = err
			tb.Logf("replicate_pcap.py: %s", out)
			return
		}
		bigErr = os.Rename(tmp, bigPath)
	})
	if bigErr != nil {
		tb.Skipf("cannot build the benchmark capture: %v", bigErr)
	}
	return bigPath
}

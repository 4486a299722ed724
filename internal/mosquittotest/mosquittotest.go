// Package mosquittotest runs a real Mosquitto broker for tests on loopback.
// Tests skip when mosquitto is not installed, unless
// IOMTGUARD_REQUIRE_MOSQUITTO=1 (set by .ci/run, which installs it).
package mosquittotest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Need returns the path of a program or skips (or fails, in CI) the test.
func Need(t testing.TB, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		for _, d := range []string{"/usr/sbin", "/usr/local/sbin"} {
			if _, e := os.Stat(filepath.Join(d, prog)); e == nil {
				return filepath.Join(d, prog)
			}
		}
		if os.Getenv("IOMTGUARD_REQUIRE_MOSQUITTO") == "1" {
			t.Fatalf("%s not installed and IOMTGUARD_REQUIRE_MOSQUITTO=1", prog)
		}
		t.Skipf("%s not installed (apt-get install mosquitto mosquitto-clients)", prog)
	}
	return p
}

// FreePort returns a TCP port free on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Broker is a running mosquitto.
type Broker struct {
	Port int
	Dir  string
	cmd  *exec.Cmd
	out  syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the process writer and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs mosquitto with the config lines conf (use {{PORT}} for the
// listener's port and {{DIR}} for a private directory readable by the
// mosquitto user) and waits until it accepts connections.
func Start(t testing.TB, conf string) *Broker {
	t.Helper()
	return StartWith(t, nil, conf)
}

// StartWith is Start with files (name -> content) written into the
// broker's directory first (mode 0644, so that mosquitto's user reads them;
// test keys only).
func StartWith(t testing.TB, files map[string][]byte, conf string) *Broker {
	t.Helper()
	bin := Need(t, "mosquitto")
	dir, err := os.MkdirTemp("", "iomtguard-mosquitto-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // mosquitto drops root for its own user and must read its files
	t.Cleanup(func() { os.RemoveAll(dir) })
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := &Broker{Port: FreePort(t), Dir: dir}
	conf = strings.ReplaceAll(conf, "{{PORT}}", fmt.Sprint(b.Port))
	conf = strings.ReplaceAll(conf, "{{DIR}}", dir)
	conf += "\npersistence false\nlog_dest stdout\nlog_type all\n"
	cf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// Mosquitto block-buffers its log when it is not a terminal: stdbuf
	// makes it line-buffered, so that tests can read it while it runs.
	if sb, err := exec.LookPath("stdbuf"); err == nil {
		b.cmd = exec.Command(sb, "-oL", "-eL", bin, "-c", cf)
	} else {
		b.cmd = exec.Command(bin, "-c", cf)
	}
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		b.cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return b
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("mosquitto did not start on port %d: %s", b.Port, b.Log())
	return nil
}

// Addr is the broker's address.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.Port) }

// Log returns mosquitto's log so far.
func (b *Broker) Log() string { return b.out.String() }

// WaitLog reports whether the broker's log contains substr within d. The
// log is copied from mosquitto's output by a goroutine, so a line for
// something a client has just seen done may not be there yet.
func (b *Broker) WaitLog(substr string, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(b.Log(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// CopyIn copies a file into the broker's directory (readable by mosquitto)
// and returns its new path.
func (b *Broker) CopyIn(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(b.Dir, filepath.Base(path))
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

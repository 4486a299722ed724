package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"gopkg.in/yaml.v3"
)

// The README's examples are a test: TestREADME runs every fenced block of
// README.md, in order, in one sandbox directory, against the built binary
// (on PATH as iomtguard). The conventions, so that a README author knows
// what is checked:
//
//   - ```sh: every line is a command; it must exit 0, or the status its
//     comment names ("(exits 1)"). A line ending in '&' runs in the
//     background until the end (the next line waits until its --listen
//     address answers). "go run ./cmd/iomtguard" is the built binary;
//     "make test" (this test's own command) is skipped.
//   - ```yaml FILE (or any language and a file name): the block is written
//     to FILE before anything runs, so examples read the README's own files.
//   - a block whose lines start with "$ ": each command runs and what it
//     prints (stdout and stderr) must be the lines after it. The documented
//     variable parts are dates and times (2026-12-01, 15:30:02.1Z), hex
//     serials of 24 to 40 digits and the width of aligned columns; a line
//     "..." stands for any number of lines.
//   - a block of JSON lines: each must parse.
//   - a block of "path/   description" lines (the layout): each path exists.
//
// Files the examples read but do not make (ward3.pcapng, capture.pcap.gz,
// ...) are made first by fixtures, from the simulator; the shared captures
// (../shared) are linked in, and a line that needs them is skipped, with a
// message, when they are absent. A block that is none of the above (a
// table) is not checked.

// readmeBlock is one fenced block.
type readmeBlock struct {
	line  int // of the opening fence
	info  string
	lines []string
}

func readmeBlocks(text string) []readmeBlock {
	var out []readmeBlock
	var cur *readmeBlock
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "```") {
			if cur == nil {
				cur = &readmeBlock{line: i + 1, info: strings.TrimSpace(strings.TrimPrefix(l, "```"))}
			} else {
				out = append(out, *cur)
				cur = nil
			}
			continue
		}
		if cur != nil {
			cur.lines = append(cur.lines, l)
		}
	}
	return out
}

// file is the file name a block is written to ("yaml site.yaml"), or "".
func (b readmeBlock) file() string {
	f := strings.Fields(b.info)
	if len(f) == 2 {
		return f[1]
	}
	return ""
}

var (
	readmeDate   = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?Z?)?\b`)
	readmeTime   = regexp.MustCompile(`\b\d{2}:\d{2}:\d{2}(\.\d+)?Z?\b`)
	readmeHex    = regexp.MustCompile(`\b[0-9a-f]{24,40}\b`)
	readmeSpaces = regexp.MustCompile(`  +`)
	readmeExits  = regexp.MustCompile(`\(exits (\d+)\)`)
	readmeListen = regexp.MustCompile(`--listen (\S+)`)
	readmePath   = regexp.MustCompile(`^(\S+/)\s{2,}\S`)
)

// normalise applies the documented variable parts to one line.
func normalise(l string) string {
	l = strings.TrimRight(l, " \t\r")
	l = readmeDate.ReplaceAllString(l, "<date>")
	l = readmeTime.ReplaceAllString(l, "<time>")
	l = readmeHex.ReplaceAllString(l, "<hex>")
	return readmeSpaces.ReplaceAllString(l, " ")
}

// matchLines matches got against want, where a "..." line of want stands
// for any number of lines.
func matchLines(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for i := 0; i <= len(got); i++ {
			if matchLines(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && normalise(want[0]) == normalise(got[0]) && matchLines(want[1:], got[1:])
}

type readmeRun struct {
	t       *testing.T
	dir     string
	env     []string
	shared  bool
	bg      []*exec.Cmd
	ran     int
	skipped []string
	times   map[string]time.Duration
}

func (r *readmeRun) command(line string) (string, bool) {
	if strings.Contains(line, "../shared") && !r.shared {
		r.skipped = append(r.skipped, line+" (../shared is absent)")
		return "", false
	}
	if strings.HasPrefix(strings.TrimSpace(line), "make test") {
		r.skipped = append(r.skipped, line+" (this test's own command)")
		return "", false
	}
	return strings.ReplaceAll(line, "go run ./cmd/iomtguard", "iomtguard"), true
}

func (r *readmeRun) shell(line string) *exec.Cmd {
	cmd := exec.Command("bash", "-o", "pipefail", "-c", line)
	cmd.Dir, cmd.Env = r.dir, r.env
	return cmd
}

// run runs a line and returns its combined output and exit status.
func (r *readmeRun) run(line string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", line)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = r.dir, r.env, &out, &out
	start := time.Now()
	err := cmd.Run()
	if r.times == nil {
		r.times = map[string]time.Duration{}
	}
	r.times[line] += time.Since(start)
	r.ran++
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		out.WriteString(err.Error())
	}
	return out.String(), code
}

func (r *readmeRun) background(at int, line string) {
	line = strings.TrimSuffix(strings.TrimSpace(line), "&")
	if m := readmeListen.FindStringSubmatch(line); m != nil {
		if c, err := net.Dial("tcp", m[1]); err == nil {
			c.Close()
			r.t.Fatalf("README.md:%d: %s: another program already listens on %s", at, line, m[1])
		}
	}
	cmd := r.shell(line)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("README.md:%d: %s: %v", at, line, err)
	}
	r.bg = append(r.bg, cmd)
	r.ran++
	if m := readmeListen.FindStringSubmatch(line); m != nil {
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if c, err := net.Dial("tcp", m[1]); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("README.md:%d: %s: nothing listens on %s after 15 s:\n%s", at, line, m[1], out.String())
			}
		}
		return
	}
	time.Sleep(time.Second)
}

func (r *readmeRun) stop() {
	for _, c := range r.bg {
		syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		}
	}
}

// readmeFixtures makes the files the examples read but do not make.
func readmeFixtures(t *testing.T, r *readmeRun) {
	for _, c := range []string{
		"iomtguard simulate --beds 3 --duration 2m -o ward3.pcapng",
		"iomtguard simulate --duration 1m --start 2026-01-05T08:00:00Z -o day1.pcap.gz",
		"iomtguard simulate --duration 1m --start 2026-01-06T08:00:00Z --seed 2 -o day2.pcap.gz",
		"iomtguard simulate --scenario icu-patient --duration 2m --format icu-csv -o patientMonitoring.csv",
		"iomtguard simulate --duration 2m -o capture.pcapng",
		"iomtguard simulate --duration 2m -o capture.pcap",
		"iomtguard simulate --duration 2m -o capture.pcap.gz",
		"iomtguard simulate --duration 1m --link ethernet -o ward.pcap",
		"mkdir -p ring && for m in 00 01 02; do iomtguard simulate --duration 1m --start 2026-01-05T08:$m:00Z --seed 3 -o ring/ward3-08$m.pcap.gz || exit; done",
		"printf 'bed1-ecg-password\\n' > bed1-ecg.pass",
	} {
		if out, code := r.run(c); code != 0 {
			t.Fatalf("fixture %s: exit %d\n%s", c, code, out)
		}
	}
	if r.shared {
		for _, f := range []string{"bruteforce.pcapng", "verimqtt-loopback.pcapng"} {
			os.Symlink(filepath.Join(r.dir, "..", "shared", "data", "captures", f), filepath.Join(r.dir, f))
		}
	}
}

// readmeBroker makes sure a broker answers on 127.0.0.1:1883 (the live
// simulator's example): one is started in-process unless one is there.
func readmeBroker(t *testing.T) func() {
	if c, err := net.Dial("tcp", "127.0.0.1:1883"); err == nil {
		c.Close()
		return func() {}
	}
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	srv.AddHook(new(auth.AllowHook), nil)
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "readme", Address: "127.0.0.1:1883"})); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	return func() { srv.Close() }
}

func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every example of README.md")
	}
	if _, err := exec.LookPath("jq"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("jq is not installed (the README pipes JSON into it): .ci/run installs it")
		}
		t.Skip("jq is not installed (the README pipes JSON into it); .ci/run installs it")
	}
	readme := os.Getenv("IOMTGUARD_README")
	if readme == "" {
		readme = "../../README.md"
	}
	text, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	bin := binary(t)
	root := t.TempDir()
	dir := filepath.Join(root, "work")
	os.MkdirAll(dir, 0o755)
	r := &readmeRun{t: t, dir: dir}
	if shared, err := filepath.Abs("../../../shared"); err == nil {
		if _, err := os.Stat(filepath.Join(shared, "data")); err == nil {
			os.Symlink(shared, filepath.Join(root, "shared"))
			r.shared = true
		}
	}
	r.env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), "HOME="+dir,
		"XDG_STATE_HOME="+filepath.Join(dir, ".state"), "NO_COLOR=1")
	defer r.stop()
	defer readmeBroker(t)()

	blocks := readmeBlocks(string(text))
	// Files first: the examples read them wherever they stand.
	for _, b := range blocks {
		if f := b.file(); f != "" {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(strings.Join(b.lines, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	readmeFixtures(t, r)
	fixtures := r.ran

	failed := 0
	fail := func(format string, a ...any) {
		failed++
		t.Errorf(format, a...)
	}
	for _, b := range blocks {
		lang := strings.Fields(b.info + " x")[0]
		switch {
		case b.file() != "":
			if lang == "yaml" {
				var v any
				if err := yaml.Unmarshal([]byte(strings.Join(b.lines, "\n")), &v); err != nil {
					fail("README.md:%d: %s is not YAML: %v", b.line, b.file(), err)
				}
			}
		case lang == "sh":
			for i, l := range b.lines {
				at := b.line + 1 + i
				trim := strings.TrimSpace(l)
				if trim == "" || strings.HasPrefix(trim, "#") {
					continue
				}
				line, ok := r.command(l)
				if !ok {
					continue
				}
				code := 0
				if m := readmeExits.FindStringSubmatch(line); m != nil {
					fmt.Sscan(m[1], &code)
				}
				if cmd, _, _ := strings.Cut(line, " #"); strings.HasSuffix(strings.TrimSpace(cmd), "&") {
					r.background(at, cmd)
					continue
				}
				out, got := r.run(line)
				if got != code {
					fail("README.md:%d: %s\nexit %d, want %d:\n%s", at, trim, got, code, tail(out, 30))
				}
			}
		case len(b.lines) > 0 && strings.HasPrefix(b.lines[0], "$ "):
			for i := 0; i < len(b.lines); {
				at := b.line + 1 + i
				cmdLine := strings.TrimPrefix(b.lines[i], "$ ")
				var want []string
				for i++; i < len(b.lines) && !strings.HasPrefix(b.lines[i], "$ "); i++ {
					want = append(want, b.lines[i])
				}
				for len(want) > 0 && strings.TrimSpace(want[len(want)-1]) == "" {
					want = want[:len(want)-1]
				}
				line, ok := r.command(cmdLine)
				if !ok {
					continue
				}
				out, code := r.run(line)
				got := strings.Split(strings.TrimRight(out, "\n"), "\n")
				if out == "" {
					got = nil
				}
				if !matchLines(want, got) {
					fail("README.md:%d: $ %s (exit %d) prints what the README does not show:\n--- README\n%s\n--- printed\n%s",
						at, cmdLine, code, strings.Join(want, "\n"), strings.Join(got, "\n"))
				}
			}
		case len(b.lines) > 0 && strings.HasPrefix(strings.TrimSpace(b.lines[0]), "{"):
			for i, l := range b.lines {
				if strings.TrimSpace(l) == "" {
					continue
				}
				if !json.Valid([]byte(l)) {
					fail("README.md:%d: not a JSON line: %s", b.line+1+i, l)
				}
			}
		case len(b.lines) > 0 && readmePath.MatchString(b.lines[0]):
			for i, l := range b.lines {
				if m := readmePath.FindStringSubmatch(l); m != nil {
					if _, err := os.Stat(filepath.Join("../..", m[1])); err != nil {
						fail("README.md:%d: %s does not exist", b.line+1+i, m[1])
					}
				}
			}
		}
	}
	for _, s := range r.skipped {
		t.Logf("skipped: %s", s)
	}
	var lines []string
	for l := range r.times {
		lines = append(lines, l)
	}
	sort.Slice(lines, func(i, j int) bool { return r.times[lines[i]] > r.times[lines[j]] })
	for _, l := range lines[:min(6, len(lines))] {
		t.Logf("%6.1fs  %s", r.times[l].Seconds(), l)
	}
	t.Logf("%d README commands run (and %d to make the files they read), %d skipped, %d failed", r.ran-fixtures, fixtures, len(r.skipped), failed)
}

func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

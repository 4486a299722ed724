package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pcaptest"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/policy"
	"github.com/iomtguard/iomtguard/internal/report"
	"github.com/iomtguard/iomtguard/internal/stats"
)

// runCLI runs the command line and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	code := 0
	if err != nil {
		code = exitCode(err)
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func TestAnalyzeDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rep")
	out, errs, code := runCLI(t, "analyze", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"frames", "MQTT control packets", "report: " + filepath.Join(dir, "report.html")} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "built-in demo") {
		t.Errorf("stderr does not say the demo is analysed: %q", errs)
	}
	m := readJSON(t, filepath.Join(dir, "analysis.json"))
	for _, k := range []string{"describe", "mqtt", "topics", "hosts", "flows", "graph", "kmeans", "forecast", "anomalies", "findings"} {
		if _, ok := m[k]; !ok {
			t.Errorf("analysis.json lacks %q", k)
		}
	}
	figs, _ := filepath.Glob(filepath.Join(dir, "figures", "*.svg"))
	if len(figs) != 7 {
		t.Errorf("%d figures, want 7", len(figs))
	}
}

// TestAnalyzeEveryCapture analyses each test capture, the dataset excerpt
// and an empty capture: each gives a report and valid JSON.
func TestAnalyzeEveryCapture(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/captures/*")
	files = append(files, "../../testdata/icu-dataset/environmentMonitoring_excerpt.csv")
	empty := filepath.Join(t.TempDir(), "empty.pcap")
	os.WriteFile(empty, pcaptest.New(capture.LinkEthernet, 0).Pcap(), 0o644)
	files = append(files, empty)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			dir := t.TempDir()
			_, errs, code := runCLI(t, "analyze", "-q", "--out", dir, f)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			readJSON(t, filepath.Join(dir, "analysis.json"))
			html, err := os.ReadFile(filepath.Join(dir, "report.html"))
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"overview", "describe", "mqtt", "network", "kmeans", "graph", "forecast", "anomalies", "findings"} {
				if !bytes.Contains(html, []byte(`<section id="`+id+`"`)) {
					t.Errorf("section %s missing", id)
				}
			}
		})
	}
}

// TestAnalyzeDamagedInput: a truncated capture and a CSV with a bad row are
// analysed as far as they can be read, and the problem heads the report.
func TestAnalyzeDamagedInput(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("../../testdata/captures/retransmission.pcap")
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.pcap")
	os.WriteFile(cut, good[:len(good)-7], 0o644)

	csvGood, err := os.ReadFile("../../testdata/icu-dataset/environmentMonitoring_excerpt.csv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(csvGood), "\n")
	lines[3] = "this,is,not,a,row\n"
	badCSV := filepath.Join(dir, "bad.csv")
	os.WriteFile(badCSV, []byte(strings.Join(lines, "")), 0o644)

	for _, f := range []string{cut, badCSV} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out := filepath.Join(dir, filepath.Base(f)+"-report")
			stdout, errs, code := runCLI(t, "analyze", "--out", out, f)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if !strings.Contains(stdout, "warning:") {
				t.Errorf("summary has no warning:\n%s", stdout)
			}
			m := readJSON(t, filepath.Join(out, "analysis.json"))
			if w, _ := m["warnings"].([]any); len(w) == 0 {
				t.Errorf("analysis.json has no warnings")
			}
			// Quiet hides progress, not data loss: every command says so.
			for _, args := range [][]string{{"analyze", "-q", "--out", out + "-q", f}, {"export", "-q", "-o", filepath.Join(dir, "x.csv"), f},
				{"export", "-q", "--format", "jsonl", "-o", filepath.Join(dir, "x.jsonl"), f}, {"forecast", "-q", "--json", f}} {
				_, errs, code := runCLI(t, args...)
				if (code != 0 && args[0] != "forecast") || !strings.Contains(errs, "warning:") {
					t.Errorf("%v: exit %d, stderr %q: the damage is not reported", args, code, errs)
				}
			}
			html, _ := os.ReadFile(filepath.Join(out, "report.html"))
			warn := bytes.Index(html, []byte(`id="warnings"`))
			first := bytes.Index(html, []byte(`<section id="overview"`))
			if warn < 0 || first < 0 || warn > first {
				t.Errorf("the problem is not stated above the overview (warnings at %d, overview at %d)", warn, first)
			}
		})
	}
}

func TestAnalyzeBadInput(t *testing.T) {
	dir := t.TempDir()
	notCap := filepath.Join(dir, "notes.txt")
	os.WriteFile(notCap, []byte("hello\n"), 0o644)
	badPolicy := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badPolicy, []byte("thresholds:\n  brute:\n    x: 1\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"analyze", notCap}, "not a pcap"},
		{[]string{"analyze", filepath.Join(dir, "missing.pcap")}, "no such file"},
		{[]string{"analyze", "--horizon", "0"}, "--horizon"},
		{[]string{"analyze", "--anomaly-level", "2"}, "--anomaly-level"},
		{[]string{"analyze", "--no-report"}, "--no-report"},
		{[]string{"analyze", "--policy", badPolicy}, "bad.yaml:3: thresholds: no detector named \"brute\""},
		{[]string{"eval", "--labels", "../../testdata/real/labels.yaml", "--policy", badPolicy}, "bad.yaml:3"},
	} {
		_, errs, code := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 mentioning %q", c.args, code, errs, c.want)
		}
	}
}

// TestAnalyzeJSONStdout: --json - puts the JSON alone on stdout.
func TestAnalyzeJSONStdout(t *testing.T) {
	out, errs, code := runCLI(t, "analyze", "--no-report", "--json", "-", "../../testdata/captures/versions.pcap")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	if !strings.Contains(errs, "MQTT control packets") {
		t.Errorf("the summary did not go to stderr: %q", errs)
	}
}

// TestReportEscapesNetworkStrings: topics and client IDs come from the
// network; none of them may become markup in the report.
func TestReportEscapesNetworkStrings(t *testing.T) {
	c := pcaptest.New(capture.LinkEthernet, 1_700_000_000e9)
	k := c.NewConn("10.0.0.1:40000", "10.0.0.2:1883")
	k.Handshake()
	k.Send(0, pcaptest.Connect(`<img src=x onerror=alert(1)>`, mqtt.V311))
	k.Send(1, []byte{0x20, 2, 0, 0})
	k.Send(0, pcaptest.Publish(`</code><script>alert(2)</script>`, "x"))
	dir := t.TempDir()
	f := filepath.Join(dir, "xss.pcap")
	os.WriteFile(f, c.Pcap(), 0o644)
	_, errs, code := runCLI(t, "analyze", "-q", "--out", dir, f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	for _, bad := range []string{"<script>alert", "<img src=x"} {
		if bytes.Contains(html, []byte(bad)) {
			t.Errorf("report.html contains %q unescaped", bad)
		}
	}
	if !bytes.Contains(html, []byte("&lt;script&gt;alert(2)")) {
		t.Errorf("the topic is not in the report, escaped")
	}
	figs, _ := filepath.Glob(filepath.Join(dir, "figures", "*.svg"))
	for _, fg := range figs {
		b, _ := os.ReadFile(fg)
		if bytes.Contains(b, []byte("<script")) || bytes.Contains(b, []byte("<img")) {
			t.Errorf("%s contains markup from the capture", fg)
		}
	}
}

func mustRead(t *testing.T, r interface{ Read([]byte) (int, error) }) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := b.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestAnalyzeRandomSlices: analyze of thousands of random small slices of
// the test captures exits without error and writes valid JSON with no
// value the analysis could not define (a non-finite number is replaced and
// named in the warnings: none may be).
func TestAnalyzeRandomSlices(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/captures/*.pcap*")
	files = append(files, "../../testdata/real/mosquitto-ward.pcap", "../../testdata/real/mosquitto-attacks.pcap")
	type rec struct {
		ts   int64
		data []byte
		orig int
		lt   capture.LinkType
	}
	var caps [][]rec
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := capture.NewReader(fh)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var recs []rec
		var p capture.Packet
		for r.Next(&p) == nil {
			recs = append(recs, rec{p.Timestamp, append([]byte(nil), p.Data...), p.OrigLen, p.LinkType})
		}
		fh.Close()
		caps = append(caps, recs)
	}
	n := 2000
	if testing.Short() || raceEnabled {
		n = 200
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		c := caps[rng.IntN(len(caps))]
		if len(c) == 0 {
			continue
		}
		a := rng.IntN(len(c))
		b := a + 1 + rng.IntN(min(60, len(c)-a))
		var buf bytes.Buffer
		w, _ := capture.NewPcapWriter(&buf, c[a].lt)
		for _, r := range c[a:b] {
			if r.lt != c[a].lt {
				continue
			}
			w.WritePacket(r.ts, r.data, r.orig)
		}
		w.Flush()
		in, err := pipeline.NewInput("slice.pcap", bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		res, err := analyzeInputs(context.Background(), []pipeline.Input{in}, analysis.Options{}, &policy.Policy{}, detect.Options{}, nil)
		if err != nil {
			t.Fatalf("slice %d (%d frames): %v", i, b-a, err)
		}
		var js bytes.Buffer
		if err := report.JSON(&js, res); err != nil {
			t.Fatalf("slice %d (%d frames): JSON: %v", i, b-a, err)
		}
		if !json.Valid(js.Bytes()) {
			t.Fatalf("slice %d: invalid JSON", i)
		}
		for _, w := range res.Warnings {
			if strings.Contains(w, "not a finite number") {
				t.Errorf("slice %d (%d frames from frame %d): %s", i, b-a, a+1, w)
			}
		}
		if i%25 == 0 {
			if err := report.Write(t.TempDir(), res); err != nil {
				t.Fatalf("slice %d: report: %v", i, err)
			}
		}
	}
}

// degenerate builds the captures whose every statistic sits at an edge:
// one frame, one value repeated, a constant series, a sparse one.
func degenerate() map[string][]byte {
	out := map[string][]byte{}
	sec := int64(1e9)
	c := pcaptest.New(capture.LinkEthernet, 1700000000*sec)
	k := c.NewConn("10.0.0.2:40000", "10.0.0.1:1883")
	k.Send(pcaptest.FromClient, []byte{0xc0, 0x00})
	c.Tick(sec / 100)
	k.Send(pcaptest.FromServer, []byte{0xd0, 0x00})
	out["pingpong"] = c.Pcap()

	c = pcaptest.New(capture.LinkEthernet, 1700000000*sec)
	k = c.NewConn("10.0.0.2:40000", "10.0.0.1:1883")
	for i := 0; i < 60; i++ {
		k.Ack(pcaptest.FromClient)
		c.Tick(sec)
	}
	out["pure-acks"] = c.Pcap()

	c = pcaptest.New(capture.LinkEthernet, 1700000000*sec)
	k = c.NewConn("10.0.0.2:40000", "10.0.0.1:1883")
	k.Handshake()
	k.Send(pcaptest.FromClient, pcaptest.Connect("pump", mqtt.V311))
	for i := 0; i < 180; i++ {
		c.Tick(sec)
		k.Send(pcaptest.FromClient, pcaptest.Publish("1/pump", "5"))
	}
	out["constant"] = c.Pcap()

	c = pcaptest.New(capture.LinkEthernet, 1700000000*sec)
	k = c.NewConn("10.0.0.2:40000", "10.0.0.1:1883")
	for i := 0; i < 9; i++ {
		k.Send(pcaptest.FromClient, pcaptest.Publish("1/ecg", "72"))
		c.Tick(40 * sec)
	}
	out["sparse"] = c.Pcap()

	c = pcaptest.New(capture.LinkEthernet, 1700000000*sec)
	c.NewConn("10.0.0.2:40000", "10.0.0.1:1883").SYN()
	out["one-frame"] = c.Pcap()
	return out
}

// TestAnalyzeDegenerate: each edge case gives exit 0, valid JSON, no
// undefined number left, and no traffic anomaly from a series too thin
// to model.
func TestAnalyzeDegenerate(t *testing.T) {
	for name, b := range degenerate() {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), name+".pcap")
			os.WriteFile(f, b, 0o644)
			dir := filepath.Join(t.TempDir(), "rep")
			out, errs, code := runCLI(t, "analyze", "-q", "--out", dir, f)
			if code != 0 {
				t.Fatalf("exit %d: %s %s", code, out, errs)
			}
			m := readJSON(t, filepath.Join(dir, "analysis.json"))
			for _, w := range m["warnings"].([]any) {
				if strings.Contains(w.(string), "not a finite number") {
					t.Error(w)
				}
			}
			for _, f := range m["findings"].([]any) {
				if id := f.(map[string]any)["id"]; id == "anomaly.traffic" || id == "anomaly.outlier" {
					t.Errorf("%s on %s", id, name)
				}
			}
		})
	}
}

// analyzeBytes runs the whole analysis on capture bytes.
func analyzeBytes(t *testing.T, b []byte) *analysis.Result {
	t.Helper()
	in, err := pipeline.NewInput("t.pcap", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	res, err := analyzeInputs(context.Background(), []pipeline.Input{in}, analysis.Options{}, &policy.Policy{}, detect.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestAnalyzeMidStream: a connection picked up without its handshake takes
// its direction from a broker another connection established;
// missing_connect covers a CONNACK first; a TCP gap is a session anomaly.
func TestAnalyzeMidStream(t *testing.T) {
	sec := int64(1e9)
	c := pcaptest.New(capture.LinkEthernet, 1700000000*sec)
	// The broker on a port no rule knows, established by a full session.
	k := c.NewConn("10.0.0.2:40000", "10.0.0.1:2883")
	k.Handshake()
	k.Send(pcaptest.FromClient, pcaptest.Connect("bed1-control", mqtt.V311))
	k.Send(pcaptest.FromServer, []byte{0x20, 2, 0, 0})
	k.Send(pcaptest.FromClient, pcaptest.Publish("1/dose", "40"))
	// A pump's connection picked up mid-stream: the broker forwards the
	// command to it first.
	m := c.NewConn("10.0.0.1:2883", "10.0.0.3:50000") // first packet from the broker
	m.Send(pcaptest.FromClient, pcaptest.Publish("1/dose", "40"))
	m.Send(pcaptest.FromServer, []byte{0xc0, 0}) // the pump's PINGREQ
	// A session whose first MQTT packet is the broker's CONNACK.
	n := c.NewConn("10.0.0.4:40004", "10.0.0.1:2883")
	n.Handshake()
	n.Send(pcaptest.FromServer, []byte{0x20, 2, 0, 0})
	// A session with bytes missing between two PUBLISH.
	g := c.NewConn("10.0.0.5:40005", "10.0.0.1:2883")
	g.Handshake()
	g.Send(pcaptest.FromClient, pcaptest.Connect("bed1-ecg", mqtt.V311))
	g.Send(pcaptest.FromClient, pcaptest.Publish("1/ecg", "72"))
	g.Skip(pcaptest.FromClient, 11)
	g.Send(pcaptest.FromClient, pcaptest.Publish("1/ecg", "74"))
	res := analyzeBytes(t, c.Pcap())
	for _, tp := range res.Topics {
		if tp.Topic == "1/dose" {
			for _, p := range tp.Publishers {
				if p != "bed1-control" {
					t.Errorf("1/dose publishers %v: the broker is listed as a publisher", tp.Publishers)
				}
			}
		}
	}
	for _, h := range res.Hosts {
		if h.Addr == "10.0.0.1" && h.Role != "broker" {
			t.Errorf("10.0.0.1 is %s, want broker", h.Role)
		}
		if h.Addr == "10.0.0.3" && h.Role == "publisher" {
			t.Errorf("the pump 10.0.0.3 is a publisher")
		}
	}
	if res.MQTT.Anomalies["missing_connect"] == 0 {
		t.Errorf("no missing_connect for the session opening with CONNACK: %v", res.MQTT.Anomalies)
	}
	if res.MQTT.Anomalies["stream_gap"] == 0 {
		t.Errorf("no stream_gap for the session with a hole: %v", res.MQTT.Anomalies)
	}
}

// TestAnalyzeTLS: MQTT over TLS has its place in the overview, the hosts,
// the graph and a TLS table, with what the capture cannot show said plainly.
func TestAnalyzeTLS(t *testing.T) {
	for _, c := range []struct {
		file     string
		version  string
		certSent any
		hidden   bool
	}{
		{"tls12", "TLS 1.2", true, false},
		{"tls13", "TLS 1.3", nil, true},
	} {
		t.Run(c.file, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "rep")
			out, errs, code := runCLI(t, "analyze", "--out", dir, "../../testdata/captures/"+c.file+".pcap")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if !strings.Contains(out, "1 MQTT over TLS") || !strings.Contains(out, "broker 10.0.0.2") {
				t.Errorf("summary:\n%s", out)
			}
			m := readJSON(t, filepath.Join(dir, "analysis.json"))
			o := m["overview"].(map[string]any)
			if o["mqtt_over_tls_connections"] != 1.0 || o["mqtt_over_tls_clients"] != 1.0 {
				t.Errorf("overview %v", o)
			}
			row := m["tls"].(map[string]any)["rows"].([]any)[0].(map[string]any)
			if row["version"] != c.version || row["sni"] != "broker.icu.local" || row["client_cert_sent"] != c.certSent || (row["hidden"] != nil) != c.hidden {
				t.Errorf("TLS row %v", row)
			}
			roles := map[string]string{}
			for _, h := range m["hosts"].([]any) {
				roles[h.(map[string]any)["addr"].(string)] = h.(map[string]any)["role"].(string)
			}
			if roles["10.0.0.2"] != "broker" || roles["10.0.0.7"] != "client (MQTT over TLS)" {
				t.Errorf("roles %v", roles)
			}
			html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
			if !strings.Contains(string(html), "TLS sessions") || c.hidden != strings.Contains(string(html), "What a capture cannot show") {
				t.Error("the report's TLS table or its note on TLS 1.3 is missing")
			}
		})
	}
}

// TestAnalyzeExact: --exact's second pass gives the quartiles of a run
// whose columns held every value (here the columns' cap is 20 values, so
// that a small capture reaches the sketch); a second pass that reads other
// frames keeps the flags and says so; on a capture under the cap --exact
// changes nothing.
func TestAnalyzeExact(t *testing.T) {
	const f = "../../testdata/real/mosquitto-ward.pcap"
	analyze := func(ao analysis.Options, again *secondPass) *analysis.Result {
		in, err := pipeline.OpenInput(f)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		res, err := analyzeRun(context.Background(), []pipeline.Input{in}, again, ao, &policy.Policy{}, detect.Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	reopen := func(path string) *secondPass {
		return &secondPass{reopen: func() ([]pipeline.Input, error) { return openInputs([]string{path}) }, stderr: io.Discard, quiet: true}
	}
	want := analyze(analysis.Options{}, nil)
	got := analyze(analysis.Options{ColumnCap: 20}, reopen(f))
	for col, w := range want.Describe {
		g := got.Describe[col]
		if g.Q25 != w.Q25 || g.Q50 != w.Q50 || g.Q75 != w.Q75 || !g.Exact {
			t.Errorf("%s: %+v, want the quartiles of %+v", col, g, w)
		}
	}
	for _, w := range got.Warnings {
		if strings.Contains(w, "--exact") {
			t.Errorf("warning: %s", w)
		}
	}
	// The second pass reads another capture: nothing is made exact.
	other := analyze(analysis.Options{ColumnCap: 20}, reopen("../../testdata/real/mosquitto-attacks.pcap"))
	flagged := 0
	for _, s := range other.Describe {
		if !s.Exact {
			flagged++
		}
	}
	said := false
	for _, w := range other.Warnings {
		said = said || strings.Contains(w, "--exact: the quartiles of frame.time_delta")
	}
	if flagged == 0 || !said {
		t.Errorf("a second pass over other frames: %d columns flagged, warnings %q", flagged, other.Warnings)
	}
	// Under the cap: the same result with and without --exact.
	if a, b := analyze(analysis.Options{}, reopen(f)), want; !equalDescribe(a.Describe, b.Describe) {
		t.Error("--exact changed a capture under the cap")
	}
}

func equalDescribe(a, b map[string]stats.Summary) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

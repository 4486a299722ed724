// Package report renders an analysis.Result: one self-contained HTML file
// (inline CSS and SVG, no request to anywhere, printable), each figure as an
// SVG file, analysis.json, and a short terminal summary. It computes nothing:
// every number comes from the Result.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/stats"
)

// Files written by Write.
const (
	HTMLFile = "report.html"
	JSONFile = "analysis.json"
	FigDir   = "figures"
)

// Write writes report.html, analysis.json and figures/*.svg into dir.
func Write(dir string, r *analysis.Result) error {
	if err := os.MkdirAll(filepath.Join(dir, FigDir), 0o755); err != nil {
		return err
	}
	// analysis.json is encoded beside the figures and the page (each only
	// reads r): on the second core, a third of the report's time.
	jsonErr := make(chan error, 1)
	go func() {
		jsonErr <- WriteFile(filepath.Join(dir, JSONFile), func(w io.Writer) error { return JSON(w, r) })
	}()
	if err := writePage(dir, r); err != nil {
		<-jsonErr
		return err
	}
	return <-jsonErr
}

// WriteFile creates path and writes it with write, reporting the first
// error (the report's files, and the command line's --json and
// --inventory files).
func WriteFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writePage writes the figures and report.html.
func writePage(dir string, r *analysis.Result) error {
	figs := figures(r)
	for _, f := range figs {
		svg := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + f.SVG + "\n"
		if err := os.WriteFile(filepath.Join(dir, FigDir, f.Name), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	return WriteFile(filepath.Join(dir, HTMLFile), func(w io.Writer) error { return HTML(w, r, figs) })
}

// JSON writes the Result as indented JSON.
func JSON(w io.Writer, r *analysis.Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(r)
}

// Summary writes the terminal summary.
func Summary(w io.Writer, r *analysis.Result, where string) {
	o := r.Overview
	fmt.Fprintf(w, "%s frames, %s bytes over %s; %s hosts, %s MQTT clients",
		groupDigits(o.Frames), groupDigits(o.Bytes), dur(o.SpanSeconds), hostCount(o, false), about(o.MQTTClientsEstimated, o.MQTTClients))
	if o.MQTTTLSClients > 0 {
		fmt.Fprintf(w, " (+%d over TLS)", o.MQTTTLSClients)
	}
	if len(o.Brokers) > 0 {
		fmt.Fprintf(w, ", broker %s", strings.Join(firstN(o.Brokers, 3), ", "))
	}
	fmt.Fprintf(w, "\n%s MQTT control packets on %s (%d cleartext%s, %d TLS", groupDigits(o.MQTTPackets), plural(o.MQTTConns, "connection"), o.Cleartext, wsNote(o.WebSocket), o.TLSConns)
	if o.MQTTOverTLS > 0 {
		fmt.Fprintf(w, ": %d MQTT over TLS, its packets hidden", o.MQTTOverTLS)
	}
	fmt.Fprintln(w, ")")
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "findings: none")
	} else {
		counts := map[detect.Severity]int{}
		for _, f := range r.Findings {
			counts[f.Severity]++
		}
		var parts []string
		for _, s := range []detect.Severity{detect.Critical, detect.High, detect.Medium, detect.Low, detect.Info} {
			if counts[s] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
			}
		}
		fmt.Fprintf(w, "findings: %s\n", strings.Join(parts, ", "))
		for i, f := range r.Findings {
			if i == 8 {
				fmt.Fprintf(w, "  ... and %d more in the report\n", len(r.Findings)-8)
				break
			}
			fmt.Fprintf(w, "  %-8s %-28s %s\n", strings.ToUpper(string(f.Severity)), f.ID, f.Title)
		}
	}
	if where != "" {
		fmt.Fprintf(w, "report: %s\n", where)
	}
}

// tlsClients adds the MQTT-over-TLS client addresses to the client count.
func tlsClients(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" cleartext; %d client addresses over TLS (client IDs hidden)", n)
}

// wsNote says how many cleartext MQTT connections ran inside WebSocket.
func wsNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d inside WebSocket", n)
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("+%d", len(s)-n))
	}
	return s
}

func dur(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	case d >= time.Minute:
		return fmt.Sprintf("%.1f min", d.Minutes())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// page accumulates HTML.
type page struct {
	b strings.Builder
}

func (p *page) f(format string, a ...any) { fmt.Fprintf(&p.b, format, a...) }
func (p *page) s(s string)                { p.b.WriteString(s) }

func num(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return groupDigits(int64(v))
	}
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 4, 64)
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func table(p *page, head []string, rows [][]string, class string) {
	p.f(`<table class="%s">`, class)
	if strings.Join(head, "") != "" {
		p.s("<thead><tr>")
		for _, h := range head {
			p.f("<th>%s</th>", esc(h))
		}
		p.s("</tr></thead>")
	}
	p.s("<tbody>")
	for _, r := range rows {
		p.s("<tr>")
		for _, c := range r {
			p.f("<td>%s</td>", c)
		}
		p.s("</tr>")
	}
	p.s("</tbody></table>")
}

func figure(p *page, f Figure, caption string) {
	p.f(`<figure data-figure="%s">%s<figcaption>%s <span class="file">(also %s/%s)</span></figcaption></figure>`,
		esc(f.Name), f.SVG, caption, FigDir, esc(f.Name))
}

// HTML writes the report page.
func HTML(w io.Writer, r *analysis.Result, figs map[string]Figure) error {
	p := &page{}
	var names []string
	for _, in := range r.Inputs {
		names = append(names, filepath.Base(in.Name))
	}
	title := "iomtguard report: " + strings.Join(names, ", ")
	p.f(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s</title><style>%s</style></head><body>`, esc(title), css)
	p.f(`<header><h1>%s</h1><p class="meta">Analysed %s by iomtguard. `, esc(title), r.Generated.Format("2006-01-02 15:04 MST"))
	p.s(`Sections: <a href="#overview">1 Overview</a> · <a href="#describe">2 Statistics</a> · <a href="#mqtt">3 MQTT</a> · <a href="#network">4 Network</a> · <a href="#kmeans">5 K-means</a> · <a href="#graph">6 Graph</a> · <a href="#forecast">7 Forecast</a> · <a href="#anomalies">8 Anomalies</a> · <a href="#findings">9 Findings</a> · <a href="#inventory">10 Devices</a></p></header>`)
	if len(r.Warnings) > 0 {
		p.s(`<div class="warning" id="warnings"><strong>Problems with the input.</strong> The results below cover what could be read.<ul>`)
		for _, warn := range r.Warnings {
			p.f("<li>%s</li>", esc(warn))
		}
		p.s("</ul></div>")
	}
	findingsAtGlance(p, r)
	overview(p, r)
	describeSection(p, r)
	mqttSection(p, r, figs)
	networkSection(p, r)
	kmeansSection(p, r, figs)
	graphSection(p, r, figs)
	forecastSection(p, r, figs)
	anomaliesSection(p, r, figs)
	findingsSection(p, r)
	inventorySection(p, r)
	p.s(`<footer>Generated by iomtguard. This page makes no request to any server and prints on A4.</footer></body></html>`)
	_, err := io.WriteString(w, p.b.String())
	return err
}

func findingsAtGlance(p *page, r *analysis.Result) {
	if len(r.Findings) == 0 {
		return
	}
	p.s(`<div class="glance"><strong>At a glance:</strong> `)
	counts := map[detect.Severity]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	for _, s := range []detect.Severity{detect.Critical, detect.High, detect.Medium, detect.Low, detect.Info} {
		if counts[s] > 0 {
			p.f(`<span class="sev %s">%d %s</span> `, s, counts[s], s)
		}
	}
	p.s(`— <a href="#findings">findings and what to change</a>.<ul>`)
	for i, f := range r.Findings {
		if i == 5 {
			break
		}
		p.f(`<li><span class="sev %s">%s</span> <a href="#f-%s">%s</a></li>`, f.Severity, f.Severity, esc(f.ID), esc(f.Title))
	}
	p.s("</ul></div>")
}

func overview(p *page, r *analysis.Result) {
	o := r.Overview
	p.s(`<section id="overview"><h2>1. Overview</h2>`)
	var inputs []string
	for _, in := range r.Inputs {
		s := fmt.Sprintf("%s (%s, %s frames)", esc(filepath.Base(in.Name)), esc(in.Format), groupDigits(in.Frames))
		if in.Damage != "" {
			s += ` <span class="bad">damaged</span>`
		}
		inputs = append(inputs, s)
	}
	versions := []string{}
	for _, v := range sortedKeys(o.Versions) {
		versions = append(versions, fmt.Sprintf("%s: %d", v, o.Versions[v]))
	}
	rows := [][]string{
		{"Input", strings.Join(inputs, "<br>")},
		{"Capture span", fmt.Sprintf("%s to %s (%s)", o.First.Format("2006-01-02 15:04:05.000"), o.Last.Format("15:04:05.000 MST"), dur(o.SpanSeconds))},
		{"Frames and bytes", fmt.Sprintf("%s frames, %s bytes (IPv4 %s, IPv6 %s; TCP %s, UDP %s)", groupDigits(o.Frames), groupDigits(o.Bytes),
			groupDigits(o.IPv4), groupDigits(o.IPv6), groupDigits(o.TCP), groupDigits(o.UDP))},
		{"Hosts", hostCount(o, true)},
		{"MQTT clients (client IDs)", about(o.MQTTClientsEstimated, o.MQTTClients) + tlsClients(o.MQTTTLSClients)},
		{"MQTT brokers", esc(strings.Join(firstN(o.Brokers, 10), ", "))},
		{"MQTT versions (connections)", esc(strings.Join(versions, ", "))},
		{"Connections", fmt.Sprintf("%s TCP streams; %d MQTT (%d in cleartext%s), %d TLS (%d of them MQTT over TLS)", groupDigits(int64(o.TCPStreams)), o.MQTTConns, o.Cleartext, wsNote(o.WebSocket), o.TLSConns, o.MQTTOverTLS)},
		{"MQTT control packets", groupDigits(o.MQTTPackets)},
	}
	if o.Gaps > 0 {
		rows = append(rows, []string{"Capture gaps", fmt.Sprintf("%d places where TCP bytes are missing from the capture", o.Gaps)})
	}
	if o.FromCSV {
		rows = append(rows, []string{"Source", "ICU dataset CSV: values are the file's own columns"})
	}
	if o.MQTTOverTLS > 0 && o.MQTTConns == 0 {
		rows = append(rows, []string{"Encryption", "every MQTT connection runs over TLS: its packets are not visible in a capture (see the TLS sessions in section 4)"})
	}
	if o.TLSConns == 0 && o.MQTTConns > 0 {
		rows = append(rows, []string{"Encryption", `<span class="bad">none: every MQTT connection is cleartext</span>`})
	}
	table(p, []string{"", ""}, rows, "kv")
	p.s("</section>")
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func describeSection(p *page, r *analysis.Result) {
	p.s(`<section id="describe"><h2>2. Descriptive statistics</h2>`)
	p.s(`<p>pandas' <code>describe()</code> of each field (count of frames that have it, mean, standard deviation with ddof = 1, quartiles by linear interpolation), as of tshark's field export of the capture; times in seconds. The first eight are the seed's Figure 1.</p>`)
	var sketched []string
	rows := func(m map[string]statsSummary) [][]string {
		var out [][]string
		for _, name := range r.DescribeOrder {
			s, ok := m[name]
			if !ok {
				continue
			}
			q := []string{num(s.Q25), num(s.Q50), num(s.Q75)}
			if s.RankError > 0 {
				for i := range q {
					q[i] = "≈" + q[i]
				}
				sketched = append(sketched, name)
			}
			out = append(out, []string{"<code>" + name + "</code>", groupDigits(s.Count), num(s.Mean), num(s.Std), num(s.Min), q[0], q[1], q[2], num(s.Max)})
		}
		return out
	}
	defer func() {
		if len(sketched) > 0 {
			p.f(`<p>≈: too many distinct values to hold (%s); those quartiles come from a sketch and are within %.1f %% of the count in rank of the exact ones (<code>rank_error</code> in analysis.json). Count, mean, std, min and max are exact.</p>`,
				esc(strings.Join(slices.Compact(slices.Sorted(slices.Values(sketched))), ", ")), 100*stats.SketchRankError)
		}
		p.s("</section>")
	}()
	head := []string{"field", "count", "mean", "std", "min", "25%", "50%", "75%", "max"}
	table(p, head, rows(conv(r.Describe)), "num")
	if len(r.DescribeMQTT) > 0 {
		p.s(`<h3>Frames carrying MQTT only</h3><p>The released dataset files hold only the frames with MQTT in them (tshark <code>-Y mqtt</code>); this is their view, the one the seed's Figure 1 describes.</p>`)
		table(p, head, rows(conv(r.DescribeMQTT)), "num")
	}
}

type statsSummary = struct {
	Count                              int64
	Mean, Std, Min, Q25, Q50, Q75, Max float64
	RankError                          float64
}

func conv[T any](m map[string]T) map[string]statsSummary {
	out := map[string]statsSummary{}
	for k, v := range m {
		b, _ := json.Marshal(v)
		var s struct {
			Count int64   `json:"count"`
			Mean  float64 `json:"mean"`
			Std   float64 `json:"std"`
			Min   float64 `json:"min"`
			Q25   float64 `json:"25%"`
			Q50   float64 `json:"50%"`
			Q75   float64 `json:"75%"`
			Max   float64 `json:"max"`
			RE    float64 `json:"rank_error"`
		}
		json.Unmarshal(b, &s)
		out[k] = statsSummary{s.Count, s.Mean, s.Std, s.Min, s.Q25, s.Q50, s.Q75, s.Max, s.RE}
	}
	return out
}

func mqttSection(p *page, r *analysis.Result, figs map[string]Figure) {
	m := r.MQTT
	p.s(`<section id="mqtt"><h2>3. MQTT messages and topics</h2>`)
	figure(p, figs["types"], "MQTT control packets by type, counted as tshark's <code>mqtt.msgtype</code>.")
	figure(p, figs["lengths"], "Remaining length of every MQTT packet. Unusually long messages can mean probing or exfiltration.")
	figure(p, figs["topics"], "Topics by number of PUBLISH packets, with the clients publishing and subscribing to each.")
	qos := []string{}
	for _, q := range sortedKeys(m.QoS) {
		qos = append(qos, fmt.Sprintf("QoS %s: %s", q, groupDigits(m.QoS[q])))
	}
	rows := [][]string{
		{"PUBLISH packets", fmt.Sprintf("%s, %s bytes of payload", groupDigits(m.Publishes), groupDigits(m.PayloadBytes))},
		{"QoS", esc(strings.Join(qos, ", "))},
		{"Retained publications", groupDigits(m.Retained)},
	}
	var an []string
	for _, k := range sortedKeys(m.Anomalies) {
		an = append(an, fmt.Sprintf("%s: %s", k, groupDigits(m.Anomalies[k])))
	}
	if len(an) > 0 {
		rows = append(rows, []string{"Protocol anomalies", esc(strings.Join(an, ", "))})
	} else {
		rows = append(rows, []string{"Protocol anomalies", "none"})
	}
	table(p, []string{"", ""}, rows, "kv")
	if len(r.Topics) > 0 {
		p.s("<h3>Topics</h3>")
		var rows [][]string
		for i, t := range r.Topics {
			if i == 40 {
				break
			}
			rows = append(rows, []string{"<code>" + esc(shorten(t.Topic, 60)) + "</code>", groupDigits(t.Publishes), groupDigits(t.Retained),
				esc(strings.Join(firstN(t.Publishers, 4), ", ")), esc(strings.Join(firstN(t.Subscribers, 4), ", "))})
		}
		table(p, []string{"topic", "publishes", "retained", "publishers", "subscribers"}, rows, "")
		if len(r.Topics) > 40 {
			p.f("<p>%d more topics in analysis.json.</p>", len(r.Topics)-40)
		}
		if m := r.MQTT; m.TopicsEstimate > 0 {
			p.f("<p>About %s topics in all (estimated): more than the topic table holds, so the %s with the fewest publishes were let go "+
				"and newcomers with fewer refused %s times; %s publishes went to topics not listed.</p>", groupDigits(int64(m.TopicsEstimate)),
				groupDigits(m.TopicsEvicted), groupDigits(m.TopicsRefused), groupDigits(m.OtherTopicPublishes))
		}
	}
	p.s("</section>")
}

func networkSection(p *page, r *analysis.Result) {
	p.s(`<section id="network"><h2>4. Ports, hosts, conversations and flows</h2>`)
	var rows [][]string
	for i, pt := range r.Ports {
		if i == 20 {
			break
		}
		rows = append(rows, []string{fmt.Sprintf("%d/%s", pt.Port, pt.Proto), esc(pt.Service), groupDigits(pt.Flows), groupDigits(pt.Packets), groupDigits(pt.Bytes)})
	}
	p.s("<h3>Ports and services</h3>")
	table(p, []string{"port", "service", "TCP connections", "packets", "bytes"}, rows, "")
	rows = nil
	for i, h := range r.Hosts {
		if i == 30 {
			break
		}
		rows = append(rows, []string{"<code>" + esc(h.Addr) + "</code>", h.Role, groupDigits(h.Frames), groupDigits(h.SentBytes), groupDigits(h.RecvBytes),
			strconv.Itoa(h.Peers), esc(strings.Join(firstN(h.ClientIDs, 3), ", "))})
	}
	p.f("<h3>Hosts</h3><p>%s hosts; the 30 busiest by bytes.</p>", hostCount(r.Overview, false))
	table(p, []string{"address", "role", "frames", "bytes sent", "bytes received", "peers", "MQTT client IDs"}, rows, "")
	rows = nil
	for i, e := range r.Graph.Edges {
		if i == 20 {
			break
		}
		rows = append(rows, []string{"<code>" + esc(e.A) + "</code> ↔ <code>" + esc(e.B) + "</code>", groupDigits(e.Flows), groupDigits(e.Packets), groupDigits(e.Bytes)})
	}
	p.s("<h3>Conversations</h3>")
	table(p, []string{"hosts", "TCP connections", "packets", "bytes"}, rows, "")
	f := r.Flows
	var states []string
	for _, k := range sortedKeys(f.ByState) {
		states = append(states, fmt.Sprintf("%s %d", k, f.ByState[k]))
	}
	var protos []string
	for _, k := range sortedKeys(f.ByProto) {
		protos = append(protos, fmt.Sprintf("%s %d", k, f.ByProto[k]))
	}
	p.f("<h3>Flows</h3><p>%s TCP connections (%s; %s). The 25 largest:</p>", groupDigits(int64(f.Total)), esc(strings.Join(protos, ", ")), esc(strings.Join(states, ", ")))
	rows = nil
	for i, fl := range f.Rows {
		if i == 25 {
			break
		}
		rows = append(rows, []string{strconv.Itoa(fl.Stream), "<code>" + esc(fl.Client) + "</code>", "<code>" + esc(fl.Server) + "</code>",
			fmt.Sprintf("%.1f", fl.Start), fmt.Sprintf("%.1f", fl.Duration), groupDigits(fl.Packets), groupDigits(fl.Bytes), fl.Proto, fl.Flags,
			fl.State + " (" + fl.Closed + ")", esc(fl.ClientID)})
	}
	table(p, []string{"stream", "client", "server", "start s", "duration s", "packets", "bytes", "protocol", "flags", "state", "client ID"}, rows, "small")
	tlsTable(p, r)
	p.s("</section>")
}

// tlsTable shows the TLS sessions and says what the capture cannot show.
func tlsTable(p *page, r *analysis.Result) {
	t := r.TLS
	if t.Sessions == 0 {
		return
	}
	var vs, cc []string
	for _, k := range sortedKeys(t.ByVersion) {
		vs = append(vs, fmt.Sprintf("%s %d", k, t.ByVersion[k]))
	}
	for _, k := range sortedKeys(t.ClientCerts) {
		cc = append(cc, fmt.Sprintf("%s %d", k, t.ClientCerts[k]))
	}
	p.f("<h3>TLS sessions</h3><p>%s TLS connections, %d of them MQTT over TLS (port 8883 or 8884, or ALPN <code>mqtt</code>); versions: %s; client certificates: %s.</p>",
		groupDigits(int64(t.Sessions)), t.MQTT, esc(strings.Join(vs, ", ")), esc(strings.Join(cc, ", ")))
	if t.ByVersion["TLS 1.3"] > 0 {
		p.s(`<p>What a capture cannot show: TLS 1.3 encrypts everything after the server's hello, so the certificates of both sides, whether the server asked for a client certificate, and every MQTT packet (client IDs, topics, credentials) are invisible here. The gateway's audit log (<code>iomtguard gateway</code>) or the broker's own log shows them.</p>`)
	}
	var rows [][]string
	yn := func(b *bool) string {
		switch {
		case b == nil:
			return "not visible"
		case *b:
			return "yes"
		}
		return `<span class="bad">no</span>`
	}
	for i, s := range t.Rows {
		if i == 30 {
			break
		}
		cert := esc(s.ServerSubject)
		if s.ServerNotAfter != "" {
			cert += " (until " + esc(s.ServerNotAfter[:10]) + ")"
			if s.ServerExpired {
				cert += ` <span class="bad">expired</span>`
			}
		}
		kind := "TLS"
		if s.MQTT {
			kind = "MQTT over TLS"
		}
		rows = append(rows, []string{strconv.Itoa(s.Stream), "<code>" + esc(s.Client) + "</code>", "<code>" + esc(s.Server) + "</code>", kind,
			esc(s.Version), esc(s.Suite), esc(s.SNI), esc(strings.Join(s.ALPN, ", ")), yn(s.CertRequested), yn(s.CertSent), esc(s.ClientSubject), cert})
	}
	table(p, []string{"stream", "client", "server", "what", "version", "suite", "SNI", "ALPN offered", "client cert asked", "client cert sent", "client cert subject", "server cert"}, rows, "small")
	if t.Dropped > 0 {
		p.f("<p>%s more in analysis.json's counts (the table keeps the first %d).</p>", groupDigits(int64(t.Dropped)), analysis.MaxTLSRows)
	}
}

func kmeansSection(p *page, r *analysis.Result, figs map[string]Figure) {
	p.s(`<section id="kmeans"><h2>5. K-means structure of the traffic</h2>`)
	k := r.KMeans
	if k == nil {
		p.s("<p>No TCP frames to cluster.</p></section>")
		return
	}
	p.f(`<p>Each TCP frame is a point (frame length, TCP payload length), standardised to z-scores as the seed did. %s frames, %d distinct points (clustered with their counts: the same result as clustering every frame). <strong>%s.</strong></p>`,
		groupDigits(k.Frames), len(k.Points), esc(k.Why))
	figure(p, figs["kmeans"], "Points sized by how many frames share them and coloured by cluster; × marks the centroids; red rings mark outliers.")
	var rows [][]string
	for j, c := range k.Centroids {
		rows = append(rows, []string{strconv.Itoa(j + 1), num(c[0]), num(c[1]), groupDigits(k.Sizes[j]), esc(k.Readings[j])})
	}
	table(p, []string{"cluster", "frame length (centroid)", "payload length (centroid)", "frames", "in plain words"}, rows, "")
	rows = nil
	for _, c := range k.Curve {
		rows = append(rows, []string{strconv.Itoa(c.K), num(c.Inertia), num(c.Silhouette)})
	}
	p.s("<h3>Choosing k</h3><p>Inertia (the elbow curve) and the silhouette on a sample of 2,000 frames for each k tried; the highest silhouette wins.</p>")
	table(p, []string{"k", "inertia (z units)", "silhouette"}, rows, "num narrow")
	p.s("</section>")
}

// about is n, said to be estimated when it is.
func about(estimated bool, n int) string {
	if estimated {
		return "about " + groupDigits(int64(n))
	}
	return groupDigits(int64(n))
}

// hostCount is the number of hosts as the report says it: estimated when
// the host table was full (analysis/evict.go).
func hostCount(o analysis.Overview, why bool) string {
	switch {
	case !o.HostsEstimated:
		return groupDigits(int64(o.Hosts))
	case !why:
		return "about " + groupDigits(int64(o.Hosts))
	}
	return fmt.Sprintf("about %s (estimated: more than the host table holds, so the %s with the least traffic were let go "+
		"and newcomers with less refused %s times)", groupDigits(int64(o.Hosts)), groupDigits(o.HostsEvicted), groupDigits(o.HostsRefused))
}

func graphSection(p *page, r *analysis.Result, figs map[string]Figure) {
	p.s(`<section id="graph"><h2>6. IP communication graph</h2>`)
	note := ""
	if r.Overview.Hosts > len(r.Graph.Nodes) {
		note = fmt.Sprintf(" The %d busiest of %s hosts are drawn.", len(r.Graph.Nodes), hostCount(r.Overview, false))
	}
	figure(p, figs["graph"], "Hosts sized by traffic and coloured by role (broker, publisher, subscriber, unknown); lines weighted by the bytes exchanged."+note)
	p.s("</section>")
}

func forecastSection(p *page, r *analysis.Result, figs map[string]Figure) {
	p.s(`<section id="forecast"><h2>7. Traffic forecast (ARIMA)</h2>`)
	f := r.Forecast
	if f == nil || f.Error != "" {
		msg := "no series"
		if f != nil {
			msg = f.Error
		}
		p.f("<p>No model: %s.</p>", esc(msg))
		figure(p, figs["forecast"], "")
		p.s("</section>")
		return
	}
	p.f(`<p>ARIMA(%d,%d,%d) on packets per %s. <strong>Why this order:</strong> %s.</p>`, f.Order[0], f.Order[1], f.Order[2], esc(r.Series.Interval), esc(f.Why))
	figure(p, figs["forecast"], fmt.Sprintf("Observed packets per %s, the model's one-step predictions, and the forecast of the next %d intervals with its %.0f %% interval.", esc(r.Series.Interval), f.Horizon, 100*f.Level))
	var rows [][]string
	for _, n := range f.ParamNames {
		rows = append(rows, []string{"<code>" + n + "</code>", num(f.Params[n])})
	}
	rows = append(rows, []string{"log-likelihood", num(f.LogLike)}, []string{"AIC / AICc / BIC", fmt.Sprintf("%s / %s / %s", num(f.AIC), num(f.AICc), num(f.BIC))})
	if f.LjungBox != nil {
		verdict := "residuals look like white noise"
		if f.LjungBox.PValue < 0.05 {
			verdict = "residuals keep some autocorrelation"
		}
		rows = append(rows, []string{"Ljung-Box", fmt.Sprintf("Q(%d) = %s, p = %s: %s", f.LjungBox.Lags, num(f.LjungBox.Stat), num(f.LjungBox.PValue), verdict)})
	}
	table(p, []string{"parameter", "value"}, rows, "kv narrow")
	rows = nil
	for i := range f.Mean {
		if i >= 10 && i != len(f.Mean)-1 {
			continue
		}
		at := float64(len(r.Series.Values)+i) * r.Series.IntervalSeconds
		rows = append(rows, []string{strconv.Itoa(i + 1), clock(r, at), num(f.Mean[i]), num(max(0, f.Lower[i])), num(f.Upper[i])})
	}
	p.f("<h3>Forecast</h3><p>The first ten steps and the last; all %d are in analysis.json. Lower bounds below zero are shown as zero (a count cannot be negative).</p>", len(f.Mean))
	table(p, []string{"step", "time (UTC)", "mean", "lower", "upper"}, rows, "num narrow")
	p.s("</section>")
}

func anomaliesSection(p *page, r *analysis.Result, figs map[string]Figure) {
	a := r.Anomalies
	p.s(`<section id="anomalies"><h2>8. Anomalies</h2>`)
	p.f(`<p>An interval is anomalous when it falls outside the model's %.1f %% one-step-ahead prediction interval, or when its residual has a modified z-score (median/MAD) above %.1f. Both thresholds are settings (<code>--anomaly-level</code>, <code>--robust-z</code>).</p>`, 100*a.Level, a.RobustZ)
	figure(p, figs["anomalies"], "The traffic series with the anomalous intervals in red.")
	var rows [][]string
	for _, e := range a.Episodes {
		kind := "below"
		if e.Above {
			kind = "above"
		}
		rule := "robust z only"
		if e.Strong {
			rule = "outside the interval"
		}
		rows = append(rows, []string{clock(r, e.Start), num(e.Start), num(e.End - e.Start), strconv.Itoa(e.Points),
			fmt.Sprintf("%s (expected %s, %s)", num(e.Peak), num(e.Expected), kind), num(e.MaxScore), rule})
	}
	p.f("<h3>Series anomalies: %d intervals in %d episodes</h3>", a.SeriesTotal, a.EpisodesTotal)
	if a.SeriesTotal > len(a.Series) || a.EpisodesTotal > len(a.Episodes) {
		p.f("<p>The strongest %d episodes and %d intervals are listed, here and in analysis.json; the findings were judged on all of them.</p>", len(a.Episodes), len(a.Series))
	}
	if len(rows) > 0 {
		p.s("<p>Anomalous intervals at most two intervals apart form one episode. Episodes outside the prediction interval are the strong ones; robust-z-only episodes are smaller departures (regular bursts such as synchronised keep-alives show up here).</p>")
		table(p, []string{"start (UTC)", "start s", "length s", "intervals", "peak", "max |z|", "rule"}, rows, "num")
		rows = nil
		for i, s := range a.Series {
			if i == 500 {
				break
			}
			rows = append(rows, []string{clock(r, s.Time), num(s.Time), num(s.Observed), num(s.Expected), fmt.Sprintf("[%s, %s]", num(s.Lower), num(s.Upper)), num(s.Score), s.Reason})
		}
		p.f("<details><summary>The %d strongest anomalous intervals</summary>", len(rows))
		table(p, []string{"time (UTC)", "time s", "observed", "expected", "interval", "robust z", "rule"}, rows, "num")
		p.s("</details>")
	} else if a.NotJudged != "" {
		p.f("<p>Not judged: %s.</p>", esc(a.NotJudged))
	} else {
		p.s("<p>None.</p>")
	}
	rows = nil
	for i, o := range a.KMeans {
		if i == 30 {
			break
		}
		rows = append(rows, []string{num(o.X[0]), num(o.X[1]), groupDigits(o.Count), strconv.Itoa(o.Cluster + 1), num(o.Score), strconv.Itoa(o.FirstFrame), clock(r, o.Time)})
	}
	p.f("<h3>K-means outliers (%d)</h3><p>Rare points (at most 0.1 %% of frames) more than three standardised units from their centroid.</p>", len(a.KMeans))
	if len(rows) > 0 {
		table(p, []string{"frame length", "payload length", "frames", "cluster", "distance", "first frame", "first seen (UTC)"}, rows, "num")
	} else {
		p.s("<p>None.</p>")
	}
	p.s("</section>")
}

func findingsSection(p *page, r *analysis.Result) {
	p.s(`<section id="findings"><h2>9. Findings</h2>`)
	if len(r.Findings) == 0 {
		p.s("<p>No findings.</p></section>")
		return
	}
	for _, f := range r.Findings {
		p.f(`<article class="finding" id="f-%s"><h3><span class="sev %s">%s</span> %s <code class="fid">%s</code></h3>`, esc(f.ID), f.Severity, f.Severity, esc(f.Title), esc(f.ID))
		p.f("<p>%s</p>", esc(f.Explanation))
		if !f.First.IsZero() {
			p.f(`<p class="meta">From %s to %s.</p>`, f.First.UTC().Format("2006-01-02 15:04:05"), f.Last.UTC().Format("15:04:05 MST"))
		}
		var ev []string
		for _, k := range sortedKeys(f.Evidence.Counts) {
			ev = append(ev, fmt.Sprintf("%s: %s", esc(k), groupDigits(f.Evidence.Counts[k])))
		}
		lists := []struct {
			name string
			v    []string
		}{{"sources", f.Evidence.Sources}, {"targets", f.Evidence.Targets}, {"client IDs", f.Evidence.ClientIDs}, {"user names", f.Evidence.Usernames}, {"topics", f.Evidence.Topics}}
		for _, l := range lists {
			if len(l.v) > 0 {
				ev = append(ev, fmt.Sprintf("%s: <code>%s</code>", l.name, esc(strings.Join(firstN(l.v, 8), ", "))))
			}
		}
		if len(f.Evidence.Frames) > 0 {
			var fr []string
			for _, n := range f.Evidence.Frames {
				fr = append(fr, strconv.Itoa(n))
			}
			ev = append(ev, "example frames: "+strings.Join(fr, ", "))
		}
		for _, n := range f.Evidence.Notes {
			ev = append(ev, esc(n))
		}
		if len(ev) > 0 {
			p.s("<h4>Evidence</h4><ul>")
			for _, e := range ev {
				p.f("<li>%s</li>", e)
			}
			p.s("</ul>")
		}
		p.f(`<h4>Controls</h4><p>HIPAA 45 CFR %s · IEC 62443-3-3 %s · FDA: %s</p>`, esc(strings.Join(f.Controls.HIPAA, ", ")),
			esc(strings.Join(f.Controls.IEC62443, ", ")), esc(strings.Join(f.Controls.FDA, ", ")))
		p.f(`<h4>Defence: %s</h4><p>%s</p>`, esc(f.Defence.Framework), esc(f.Defence.Change))
		if f.Defence.Gateway != "" {
			p.f(`<details open><summary>iomtguard gateway policy</summary><pre>%s</pre></details>`, esc(f.Defence.Gateway))
		}
		if f.Defence.Mosquitto != "" {
			p.f(`<details><summary>Mosquitto</summary><pre>%s</pre></details>`, esc(f.Defence.Mosquitto))
		}
		p.s("</article>")
	}
	p.s("</section>")
}

const css = `
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d2329;max-width:1120px;margin:0 auto;padding:24px;line-height:1.45;background:#fff}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.3em;border-bottom:2px solid #0072B2;padding-bottom:4px;margin-top:36px}
h3{font-size:1.05em;margin:20px 0 8px}h4{margin:12px 0 4px;font-size:.95em}
.meta{color:#5b6770;font-size:.9em}a{color:#005a8e}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.88em;width:100%}
th,td{border:1px solid #d6dce1;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef3f7}table.num td{text-align:right;font-variant-numeric:tabular-nums}table.num td:first-child{text-align:left}
table.kv td:first-child{width:230px;color:#3a4650;font-weight:600}table.narrow{width:auto}table.small{font-size:.8em}
figure{margin:12px 0 20px}figure svg{max-width:100%;height:auto;border:1px solid #e3e8ec}
figcaption{font-size:.85em;color:#3a4650}.file{color:#7b8790}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
pre{background:#f5f7f9;border:1px solid #dde3e8;padding:8px;overflow-x:auto;font-size:.85em}
.warning{background:#fff4e5;border:1px solid #f0a040;padding:10px 14px;margin:16px 0}
.glance{background:#f3f7fb;border:1px solid #cfdbe6;padding:10px 14px;margin:16px 0}
.bad{color:#b00020;font-weight:600}
.sev{display:inline-block;padding:1px 7px;border-radius:3px;font-size:.78em;font-weight:700;text-transform:uppercase;color:#fff}
.sev.critical{background:#7b001c}.sev.high{background:#c62828}.sev.medium{background:#e67e00}.sev.low{background:#2e7d32}.sev.info{background:#546e7a}
.finding{border:1px solid #d6dce1;border-left:5px solid #546e7a;padding:4px 14px 10px;margin:14px 0;page-break-inside:avoid}
.fid{color:#5b6770;font-weight:400;font-size:.8em}
footer{margin-top:40px;color:#7b8790;font-size:.8em}
@media print{body{max-width:none;padding:0}h2{page-break-after:avoid}figure{page-break-inside:avoid}a{color:inherit}details{display:block}}
`

// clock is the wall-clock time (UTC) sec seconds after the series' start.
// inventorySection lists the devices (the first 300: brokers, then by key).
func inventorySection(p *page, r *analysis.Result) {
	p.s(`<section id="inventory"><h2>10. Device inventory</h2>`)
	if len(r.Inventory) == 0 {
		p.s("<p>No device was seen (no MQTT client, broker or TLS host).</p></section>")
		return
	}
	roles := map[string]int{}
	for _, d := range r.Inventory {
		roles[d.Role]++
	}
	var parts []string
	for _, k := range sortedKeys(roles) {
		parts = append(parts, fmt.Sprintf("%d %s", roles[k], k))
	}
	p.f("<p>%d devices (%s), from what each did: the role from what it publishes and subscribes, the kind from its topics and names (hover for the evidence). <code>iomtguard analyze --inventory FILE.csv</code> writes the whole list; <code>iomtguard inventory diff</code> compares two.</p>",
		len(r.Inventory), esc(strings.Join(parts, ", ")))
	var rows [][]string
	for i, d := range r.Inventory {
		if i == 300 {
			break
		}
		sec := esc(d.Transport)
		if d.Transport != "tls" {
			sec = `<span class="bad">` + sec + `</span>`
		}
		id := esc(d.Key)
		if d.Identity != "" {
			id += "<br><small>" + esc(d.Identity) + "</small>"
		}
		rate := "–"
		if d.RatePerMin > 0 {
			rate = fmt.Sprintf("%.1f", d.RatePerMin)
		}
		rows = append(rows, []string{id, esc(d.Role), `<span title="` + esc(d.KindEvidence) + `">` + esc(d.Kind) + `</span>`,
			"<code>" + esc(strings.Join(firstN(d.Addrs, 3), " ")) + "</code>", sec, esc(d.Credential),
			esc(strings.Join(firstN(d.Published, 3), " ")), esc(strings.Join(firstN(d.Subscribed, 3), " ")), rate,
			d.FirstSeen.Format("15:04:05"), d.LastSeen.Format("15:04:05")})
	}
	table(p, []string{"device", "role", "kind", "addresses", "transport", "credential", "publishes to", "subscribes to", "publishes/min", "first seen", "last seen"}, rows, "small")
	if len(r.Inventory) > 300 {
		p.f("<p>The first 300 of %d; analysis.json and <code>--inventory</code> have every one.</p>", len(r.Inventory))
	}
	p.s("</section>")
}

func clock(r *analysis.Result, sec float64) string {
	if r.Series.Start.IsZero() {
		return num(sec)
	}
	return r.Series.Start.Add(time.Duration(sec * float64(time.Second))).Format("15:04:05")
}

package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/mqtt"
)

// Figure is one rendered figure.
type Figure struct {
	Name  string // file name in DIR/figures
	Title string
	SVG   string
}

// figures renders every figure of the Result (sections 3 to 8).
func figures(r *analysis.Result) map[string]Figure {
	out := map[string]Figure{}
	add := func(key, name, title, svg string) {
		out[key] = Figure{Name: name, Title: title, SVG: svg}
	}
	add("types", "fig2-mqtt-types.svg", "MQTT control packets by type", figTypes(r))
	add("lengths", "fig3-mqtt-lengths.svg", "MQTT message lengths (remaining length)", figLengths(r))
	add("topics", "fig4-topics.svg", "Topics by PUBLISH count", figTopics(r))
	add("kmeans", "fig5-kmeans.svg", "K-means of frame length and TCP payload length", figKMeans(r))
	add("graph", "fig6-ip-graph.svg", "IP communication graph", figGraph(r))
	add("forecast", "fig7-forecast.svg", "Traffic series, ARIMA fit and the next minute", figForecast(r))
	add("anomalies", "fig8-anomalies.svg", "Anomalies on the traffic series", figAnomalies(r))
	return out
}

func empty(title, why string) string {
	c := newChart(720, 160, title)
	fmt.Fprintf(&c.b, `<text x="%.1f" y="90" text-anchor="middle" fill="#777" font-size="13">%s</text>`, c.w/2, esc(why))
	return c.done()
}

func figTypes(r *analysis.Result) string {
	var labels []string
	var values []float64
	for t := 0; t < 16; t++ {
		if n := r.MQTT.MsgTypes[strconv.Itoa(t)]; n > 0 {
			labels = append(labels, fmt.Sprintf("%d %s", t, mqtt.Type(t)))
			values = append(values, float64(n))
		}
	}
	if len(values) == 0 {
		return empty("MQTT control packets by type", "no MQTT in this capture")
	}
	return barChart("MQTT control packets by type (Figure 2)", "packet type (mqtt.msgtype)", "packets", labels, values, nil)
}

func figLengths(r *analysis.Result) string {
	ls := r.MQTT.Lengths
	if len(ls) == 0 {
		return empty("MQTT message lengths", "no MQTT in this capture")
	}
	var labels []string
	var values []float64
	if len(ls) <= 40 {
		for _, l := range ls {
			labels = append(labels, strconv.FormatInt(l.Value, 10))
			values = append(values, float64(l.Count))
		}
	} else {
		// Forty bins over the range, on a square-root scale of length so
		// that the many short messages keep their detail.
		lo, hi := math.Sqrt(float64(ls[0].Value)), math.Sqrt(float64(ls[len(ls)-1].Value))
		bins := make([]float64, 40)
		edges := make([]float64, 41)
		for i := range edges {
			e := lo + (hi-lo)*float64(i)/40
			edges[i] = e * e
		}
		for _, l := range ls {
			i := int((math.Sqrt(float64(l.Value)) - lo) / (hi - lo + 1e-12) * 40)
			bins[min(i, 39)] += float64(l.Count)
		}
		for i := range bins {
			labels = append(labels, fmt.Sprintf("%.0f-%.0f", math.Ceil(edges[i]), math.Floor(edges[i+1])))
			values = append(values, bins[i])
		}
	}
	return barChart("MQTT message lengths (Figure 3)", "remaining length, bytes (mqtt.len)", "packets", labels, values, nil)
}

func figTopics(r *analysis.Result) string {
	ts := r.Topics
	if len(ts) == 0 {
		return empty("Topics", "no PUBLISH in this capture")
	}
	if len(ts) > 20 {
		ts = ts[:20]
	}
	var labels, notes []string
	var values []float64
	for _, t := range ts {
		labels = append(labels, t.Topic)
		values = append(values, float64(t.Publishes))
		notes = append(notes, fmt.Sprintf("· %s, %s", plural(len(t.Publishers), "publisher"), plural(len(t.Subscribers), "subscriber")))
	}
	title := "Topics by PUBLISH count (Figure 4)"
	if n := r.MQTT.TopicsEstimate; n > 0 {
		title = fmt.Sprintf("The 20 busiest of about %s topics (Figure 4)", groupDigits(int64(n)))
	} else if len(r.Topics) > 20 {
		title = fmt.Sprintf("The 20 busiest of %d topics (Figure 4)", len(r.Topics))
	}
	return hbarChart(title, "PUBLISH packets", labels, values, notes)
}

func figKMeans(r *analysis.Result) string {
	k := r.KMeans
	if k == nil || len(k.Points) == 0 {
		return empty("K-means", "no TCP frames to cluster")
	}
	c := newChart(720, 440, fmt.Sprintf("K-means, k = %d, of frame length and TCP payload length (Figure 5)", k.K))
	c.x0, c.x1, c.y0, c.y1 = math.Inf(1), math.Inf(-1), 0, math.Inf(-1)
	var maxCount int64
	for _, p := range k.Points {
		c.x0, c.x1 = math.Min(c.x0, p.X[0]), math.Max(c.x1, p.X[0])
		c.y1 = math.Max(c.y1, p.X[1])
		maxCount = max(maxCount, p.Count)
	}
	pad := (c.x1 - c.x0) * 0.05
	c.x0, c.x1 = math.Max(0, c.x0-pad-1), c.x1+pad+1
	c.y1 = niceMax(c.y1 * 1.05)
	c.axes("frame length, bytes (frame.len)", "TCP payload length, bytes (tcp.len)", true)
	outlier := map[[2]float64]bool{}
	for _, o := range k.Outliers {
		outlier[[2]float64{o.X[0], o.X[1]}] = true
	}
	// Largest first, so small points stay visible on top.
	pts := append([]analysis.KPoint(nil), k.Points...)
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].Count > pts[j].Count })
	for _, p := range pts {
		rad := 2.5 + 9*math.Log1p(float64(p.Count))/math.Log1p(float64(maxCount))
		col := palette[p.Cluster%len(palette)]
		fmt.Fprintf(&c.b, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s" fill-opacity="0.55" stroke="%s"><title>frame %g B, payload %g B: %s frames, cluster %d</title></circle>`,
			c.sx(p.X[0]), c.sy(p.X[1]), rad, col, col, p.X[0], p.X[1], groupDigits(p.Count), p.Cluster+1)
		if outlier[[2]float64{p.X[0], p.X[1]}] {
			fmt.Fprintf(&c.b, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="none" stroke="#d00" stroke-width="2"/>`, c.sx(p.X[0]), c.sy(p.X[1]), rad+4)
		}
	}
	var items [][2]string
	for j, cen := range k.Centroids {
		x, y := c.sx(cen[0]), c.sy(cen[1])
		fmt.Fprintf(&c.b, `<path d="M%.1f %.1fl10 10m0 -10l-10 10" stroke="#000" stroke-width="2.5" transform="translate(-5 -5)"><title>centroid %d: frame %.1f B, payload %.1f B</title></path>`, x, y, j+1, cen[0], cen[1])
		items = append(items, [2]string{palette[j%len(palette)], fmt.Sprintf("cluster %d", j+1)})
	}
	items = append(items, [2]string{"#000", "× centroid"})
	if len(k.Outliers) > 0 {
		items = append(items, [2]string{"#d00", "outlier"})
	}
	c.legend(items)
	return c.done()
}

var roleColors = map[string]string{"broker": "#D55E00", "publisher": "#0072B2", "subscriber": "#009E73",
	"publisher+subscriber": "#CC79A7", "client": "#56B4E9", "unknown": "#999999"}

func figGraph(r *analysis.Result) string {
	g := r.Graph
	if len(g.Nodes) == 0 {
		return empty("IP communication graph", "no IP traffic")
	}
	w, h := 760.0, 560.0
	pos := layout(g, w, h)
	c := newChart(w, h, fmt.Sprintf("IP communication graph: %d hosts, %d conversations (Figure 6)", len(g.Nodes), len(g.Edges)))
	var maxEdge, maxNode int64 = 1, 1
	for _, e := range g.Edges {
		maxEdge = max(maxEdge, e.Bytes)
	}
	for _, n := range g.Nodes {
		maxNode = max(maxNode, n.Bytes)
	}
	for _, e := range g.Edges {
		a, b := pos[e.A], pos[e.B]
		width := 0.6 + 5*math.Log1p(float64(e.Bytes))/math.Log1p(float64(maxEdge))
		fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#7a8a99" stroke-opacity="0.55" stroke-width="%.2f"><title>%s ↔ %s: %s bytes, %s packets</title></line>`,
			a[0], a[1], b[0], b[1], width, esc(e.A), esc(e.B), groupDigits(e.Bytes), groupDigits(e.Packets))
	}
	labels := len(g.Nodes) <= 40
	for _, n := range g.Nodes {
		p := pos[n.ID]
		rad := 4 + 14*math.Sqrt(float64(n.Bytes)/float64(maxNode))
		col := roleColors[n.Role]
		if col == "" {
			col = "#999"
		}
		fmt.Fprintf(&c.b, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s" stroke="#fff" stroke-width="1.5"><title>%s (%s): %s bytes</title></circle>`,
			p[0], p[1], rad, col, esc(n.ID), n.Role, groupDigits(n.Bytes))
		if labels || n.Role == "broker" {
			fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-size="10" fill="#222" text-anchor="middle" paint-order="stroke" stroke="#fff" stroke-width="3">%s</text>`,
				p[0], p[1]-rad-3, esc(n.ID))
		}
	}
	var items [][2]string
	for _, role := range []string{"broker", "publisher", "subscriber", "publisher+subscriber", "client", "unknown"} {
		for _, n := range g.Nodes {
			if n.Role == role {
				items = append(items, [2]string{roleColors[role], role})
				break
			}
		}
	}
	c.legend(items)
	return c.done()
}

// layout places the graph's nodes with Fruchterman and Reingold's force
// model: deterministic (nodes start on a circle in order), a fixed number of
// iterations, positions kept inside the plot area.
func layout(g analysis.Graph, w, h float64) map[string][2]float64 {
	n := len(g.Nodes)
	left, top, pw, ph := 40.0, 50.0, w-80, h-90
	idx := map[string]int{}
	x := make([]float64, n)
	y := make([]float64, n)
	for i, nd := range g.Nodes {
		idx[nd.ID] = i
		a := 2 * math.Pi * float64(i) / float64(n)
		x[i], y[i] = pw/2+pw/3*math.Cos(a), ph/2+ph/3*math.Sin(a)
	}
	area := pw * ph
	k := math.Sqrt(area / float64(max(n, 1)))
	temp := pw / 8
	dx := make([]float64, n)
	dy := make([]float64, n)
	for it := 0; it < 300; it++ {
		clear(dx)
		clear(dy)
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				ddx, ddy := x[i]-x[j], y[i]-y[j]
				d := math.Max(math.Hypot(ddx, ddy), 0.01)
				f := k * k / d
				dx[i] += ddx / d * f
				dy[i] += ddy / d * f
				dx[j] -= ddx / d * f
				dy[j] -= ddy / d * f
			}
		}
		for _, e := range g.Edges {
			i, j := idx[e.A], idx[e.B]
			ddx, ddy := x[i]-x[j], y[i]-y[j]
			d := math.Max(math.Hypot(ddx, ddy), 0.01)
			f := d * d / k
			dx[i] -= ddx / d * f
			dy[i] -= ddy / d * f
			dx[j] += ddx / d * f
			dy[j] += ddy / d * f
		}
		for i := 0; i < n; i++ {
			// A little gravity keeps disconnected nodes in view.
			dx[i] -= (x[i] - pw/2) * 0.02 * k / 10
			dy[i] -= (y[i] - ph/2) * 0.02 * k / 10
			d := math.Max(math.Hypot(dx[i], dy[i]), 0.01)
			step := math.Min(d, temp)
			x[i] += dx[i] / d * step
			y[i] += dy[i] / d * step
			x[i] = math.Max(20, math.Min(pw-20, x[i]))
			y[i] = math.Max(20, math.Min(ph-20, y[i]))
		}
		temp *= 0.985
	}
	out := map[string][2]float64{}
	for i, nd := range g.Nodes {
		out[nd.ID] = [2]float64{left + x[i], top + y[i]}
	}
	return out
}

// decimate keeps at most n points of a series for drawing, preserving each
// bucket's minimum and maximum.
func decimate(y []float64, offset int, n int) (xs, ys []float64) {
	if len(y) <= n {
		for i, v := range y {
			xs = append(xs, float64(offset+i))
			ys = append(ys, v)
		}
		return
	}
	bucket := float64(len(y)) / float64(n/2)
	for b := 0; b < n/2; b++ {
		lo, hi := int(float64(b)*bucket), min(int(float64(b+1)*bucket), len(y))
		mi, ma := lo, lo
		for i := lo; i < hi; i++ {
			if y[i] < y[mi] {
				mi = i
			}
			if y[i] > y[ma] {
				ma = i
			}
		}
		first, second := mi, ma
		if ma < mi {
			first, second = ma, mi
		}
		xs = append(xs, float64(offset+first), float64(offset+second))
		ys = append(ys, y[first], y[second])
	}
	return
}

func polyline(c *chart, xs, ys []float64, color string, width float64, dash string) {
	var b []byte
	for i := range xs {
		b = fmt.Appendf(b, "%.1f,%.1f ", c.sx(xs[i]), c.sy(ys[i]))
	}
	d := ""
	if dash != "" {
		d = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(&c.b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f"%s/>`, b, color, width, d)
}

func figForecast(r *analysis.Result) string {
	f := r.Forecast
	y := r.Series.Values
	if f == nil || f.Error != "" || len(y) == 0 {
		why := "no traffic series"
		if f != nil && f.Error != "" {
			why = f.Error
		}
		return empty("Traffic forecast", why)
	}
	sec := r.Series.IntervalSeconds
	// Show the fitted window (at most the last 600 intervals) and the forecast.
	show := min(len(y), 600)
	from := len(y) - show
	c := newChart(760, 380, fmt.Sprintf("Packets per %s, ARIMA(%d,%d,%d) and the next %d intervals (Figure 7)", r.Series.Interval, f.Order[0], f.Order[1], f.Order[2], f.Horizon))
	c.x0, c.x1 = float64(from)*sec, float64(len(y)+f.Horizon)*sec
	c.y0, c.y1 = 0, 0
	for _, v := range y[from:] {
		c.y1 = math.Max(c.y1, v)
	}
	for _, v := range f.Upper {
		c.y1 = math.Max(c.y1, v)
	}
	// Counts cannot be negative: the band is drawn from zero up.
	c.y1 = niceMax(c.y1)
	c.axes("time since the capture's start, seconds", "packets per "+r.Series.Interval, true)
	// Forecast band.
	var band []byte
	for i := range f.Upper {
		band = fmt.Appendf(band, "%.1f,%.1f ", c.sx(float64(len(y)+i)*sec), c.sy(f.Upper[i]))
	}
	for i := len(f.Lower) - 1; i >= 0; i-- {
		band = fmt.Appendf(band, "%.1f,%.1f ", c.sx(float64(len(y)+i)*sec), c.sy(max(0, f.Lower[i])))
	}
	fmt.Fprintf(&c.b, `<polygon points="%s" fill="#E69F00" fill-opacity="0.25" stroke="none"/>`, band)
	xs, ys := decimate(y[from:], from, 1200)
	for i := range xs {
		xs[i] *= sec
	}
	polyline(c, xs, ys, palette[0], 1.2, "")
	// The fitted values over the shown part of the window.
	if len(f.Fitted) > 0 {
		start := max(from, f.FitStart)
		fx, fy := decimate(f.Fitted[start-f.FitStart:], start, 1200)
		for i := range fx {
			fx[i] *= sec
		}
		polyline(c, fx, fy, palette[2], 1, "3 2")
	}
	var mx, my []float64
	for i, v := range f.Mean {
		mx = append(mx, float64(len(y)+i)*sec)
		my = append(my, v)
	}
	polyline(c, mx, my, "#D55E00", 2, "")
	c.legend([][2]string{{palette[0], "observed"}, {palette[2], "one-step fit"}, {"#D55E00", "forecast"}, {"#E69F00", fmt.Sprintf("%.0f %% interval", 100*f.Level)}})
	return c.done()
}

func figAnomalies(r *analysis.Result) string {
	y := r.Series.Values
	if len(y) == 0 {
		return empty("Anomalies", "no traffic series")
	}
	sec := r.Series.IntervalSeconds
	c := newChart(760, 360, fmt.Sprintf("Anomalies on packets per %s: %d flagged (Figure 8)", r.Series.Interval, len(r.Anomalies.Series)))
	c.x0, c.x1 = 0, float64(len(y))*sec
	for _, v := range y {
		c.y1 = math.Max(c.y1, v)
	}
	c.y1 = niceMax(c.y1)
	c.axes("time since the capture's start, seconds", "packets per "+r.Series.Interval, true)
	xs, ys := decimate(y, 0, 1500)
	for i := range xs {
		xs[i] *= sec
	}
	polyline(c, xs, ys, palette[0], 1, "")
	for i, a := range r.Anomalies.Series {
		if i >= 500 {
			break
		}
		fmt.Fprintf(&c.b, `<circle cx="%.1f" cy="%.1f" r="4" fill="#d00" fill-opacity="0.8"><title>t = %gs: %g observed, %.1f expected (%s, robust z %.1f)</title></circle>`,
			c.sx(a.Time), c.sy(a.Observed), a.Time, a.Observed, a.Expected, a.Reason, a.Score)
	}
	c.legend([][2]string{{palette[0], "packets"}, {"#d00", "anomaly"}})
	return c.done()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

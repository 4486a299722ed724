package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// palette is colour-blind-safe (Okabe and Ito).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"}

// chart draws one SVG figure with a plot area and axes.
type chart struct {
	b                     strings.Builder
	w, h                  float64
	left, right, top, bot float64
	x0, x1, y0, y1        float64 // data ranges
	ylog                  bool
	title                 string
}

func newChart(w, h float64, title string) *chart {
	c := &chart{w: w, h: h, left: 70, right: 20, top: 36, bot: 58, title: title}
	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="%s" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12">`,
		w, h, w, h, esc(title))
	fmt.Fprintf(&c.b, `<title>%s</title><rect x="0" y="0" width="%g" height="%g" fill="#ffffff"/>`, esc(title), w, h)
	fmt.Fprintf(&c.b, `<text x="%g" y="20" font-size="14" font-weight="600" fill="#222">%s</text>`, c.left, esc(title))
	return c
}

func esc(s string) string { return html.EscapeString(s) }

func (c *chart) pw() float64 { return c.w - c.left - c.right }
func (c *chart) ph() float64 { return c.h - c.top - c.bot }

func (c *chart) sx(v float64) float64 {
	if c.x1 == c.x0 {
		return c.left + c.pw()/2
	}
	return c.left + (v-c.x0)/(c.x1-c.x0)*c.pw()
}

func (c *chart) sy(v float64) float64 {
	if c.ylog {
		v = math.Log10(math.Max(v, 1))
	}
	if c.y1 == c.y0 {
		return c.top + c.ph()/2
	}
	return c.top + c.ph() - (v-c.y0)/(c.y1-c.y0)*c.ph()
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	span := hi - lo
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, math.Round(v/step)*step)
	}
	return out
}

// fmtNum formats a tick or value compactly (1.2k, 3.4M).
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trim(v/1e9) + "G"
	case a >= 1e6:
		return trim(v/1e6) + "M"
	case a >= 1e4:
		return trim(v/1e3) + "k"
	case a == 0:
		return "0"
	case a < 0.01:
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
	return trim(v)
}

func trim(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// axes draws the frame, grid, ticks and axis labels (with units).
func (c *chart) axes(xlabel, ylabel string, xticks bool) {
	fmt.Fprintf(&c.b, `<g stroke="#d0d0d0" stroke-width="1">`)
	yt := niceTicks(c.y0, c.y1, 5)
	if c.ylog {
		yt = nil
		for e := math.Floor(c.y0); e <= c.y1; e++ {
			yt = append(yt, e)
		}
	}
	for _, v := range yt {
		y := c.top + c.ph() - (v-c.y0)/math.Max(c.y1-c.y0, 1e-300)*c.ph()
		fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, c.left, y, c.left+c.pw(), y)
	}
	fmt.Fprint(&c.b, `</g><g fill="#444" font-size="11">`)
	for _, v := range yt {
		y := c.top + c.ph() - (v-c.y0)/math.Max(c.y1-c.y0, 1e-300)*c.ph()
		label := fmtNum(v)
		if c.ylog {
			label = fmtNum(math.Pow(10, v))
		}
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, c.left-6, y, label)
	}
	if xticks {
		for _, v := range niceTicks(c.x0, c.x1, 6) {
			if v < c.x0 || v > c.x1 {
				continue
			}
			x := c.sx(v)
			fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888"/>`, x, c.top+c.ph(), x, c.top+c.ph()+4)
			fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x, c.top+c.ph()+17, fmtNum(v))
		}
	}
	fmt.Fprint(&c.b, `</g>`)
	fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#666"/>`, c.left, c.top+c.ph(), c.left+c.pw(), c.top+c.ph())
	fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#666"/>`, c.left, c.top, c.left, c.top+c.ph())
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">%s</text>`, c.left+c.pw()/2, c.h-10, esc(xlabel))
	fmt.Fprintf(&c.b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle" fill="#333">%s</text>`, c.top+c.ph()/2, esc(ylabel))
}

func (c *chart) legend(items [][2]string) {
	x := c.left + c.pw() - 4
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		wlab := float64(len(it[1]))*6.2 + 22
		x -= wlab
		fmt.Fprintf(&c.b, `<rect x="%.1f" y="26" width="10" height="10" fill="%s"/><text x="%.1f" y="35" font-size="11" fill="#333">%s</text>`,
			x, it[0], x+14, esc(it[1]))
	}
}

func (c *chart) done() string {
	c.b.WriteString(`</svg>`)
	return c.b.String()
}

// barChart draws vertical bars with category labels.
func barChart(title, xlabel, ylabel string, labels []string, values []float64, colors []string) string {
	c := newChart(720, 360, title)
	c.x0, c.x1 = 0, float64(len(values))
	c.y0 = 0
	for _, v := range values {
		c.y1 = math.Max(c.y1, v)
	}
	c.y1 = niceMax(c.y1)
	rotate := len(labels) > 8
	if rotate {
		c.bot = 96
	}
	c.axes(xlabel, ylabel, false)
	bw := c.pw() / math.Max(float64(len(values)), 1)
	for i, v := range values {
		x := c.left + float64(i)*bw + bw*0.15
		y := c.sy(v)
		col := palette[0]
		if colors != nil {
			col = colors[i%len(colors)]
		}
		fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
			x, y, bw*0.7, c.top+c.ph()-y, col, esc(labels[i]), fmtInt(v))
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#222">%s</text>`, x+bw*0.35, y-4, fmtNum(v))
		lx, ly := x+bw*0.35, c.top+c.ph()+16
		if rotate {
			fmt.Fprintf(&c.b, `<text transform="translate(%.1f %.1f) rotate(-40)" text-anchor="end" font-size="11" fill="#444">%s</text>`, lx, ly-4, esc(shorten(labels[i], 16)))
		} else {
			fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11" fill="#444">%s</text>`, lx, ly, esc(shorten(labels[i], 14)))
		}
	}
	return c.done()
}

// hbarChart draws horizontal bars (long labels, such as topics).
func hbarChart(title, xlabel string, labels []string, values []float64, notes []string) string {
	rowH := 22.0
	h := 70 + rowH*float64(max(len(values), 1)) + 40
	c := newChart(760, h, title)
	longest := 0
	for _, l := range labels {
		longest = max(longest, len(shorten(l, 34)))
	}
	c.left = math.Min(20+float64(longest)*6.4, 260)
	c.bot = 50
	c.x0 = 0
	for _, v := range values {
		c.x1 = math.Max(c.x1, v)
	}
	c.x1 = niceMax(c.x1)
	fmt.Fprint(&c.b, `<g stroke="#e0e0e0">`)
	for _, v := range niceTicks(c.x0, c.x1, 5) {
		fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, c.sx(v), c.top, c.sx(v), c.top+c.ph())
	}
	fmt.Fprint(&c.b, `</g>`)
	for _, v := range niceTicks(c.x0, c.x1, 5) {
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11" fill="#444">%s</text>`, c.sx(v), c.top+c.ph()+16, fmtNum(v))
	}
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">%s</text>`, c.left+c.pw()/2, c.h-10, esc(xlabel))
	for i, v := range values {
		y := c.top + float64(i)*rowH + 3
		w := c.sx(v) - c.left
		note := ""
		if notes != nil {
			note = notes[i]
		}
		fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s %s</title></rect>`,
			c.left, y, math.Max(w, 1), rowH-6, palette[0], esc(labels[i]), fmtInt(v), esc(note))
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle" font-size="11" fill="#333">%s</text>`,
			c.left-6, y+(rowH-6)/2, esc(shorten(labels[i], 34)))
		label := fmtNum(v)
		if note != "" {
			label += "  " + note
		}
		tx, anchor, fill := c.left+w+4, "start", "#222"
		if w > c.pw()*0.7 {
			tx, anchor, fill = c.left+w-4, "end", "#fff"
		}
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="%s" dominant-baseline="middle" font-size="10" fill="%s">%s</text>`,
			tx, y+(rowH-6)/2, anchor, fill, esc(shorten(label, 60)))
	}
	return c.done()
}

func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	t := niceTicks(0, v, 5)
	last := t[len(t)-1]
	if last < v {
		last += t[1] - t[0]
	}
	return last
}

func fmtInt(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return groupDigits(int64(v))
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// groupDigits writes 1234567 as 1,234,567.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

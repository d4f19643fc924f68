package templates

import (
	htmltemplate "html/template"
	"strconv"
	"strings"
)

// Charts of the admin app are drawn on the server as SVG: no script draws them and no
// third party serves them, and the Content-Security-Policy needs no 'unsafe-inline'
// (colours are SVG presentation attributes and classes, never style attributes).
// Each chart is a figure holding the drawing, whose accessible name is its title
// (role img, aria-label and <title>), a legend, and the same numbers as a table in a
// disclosure, for screen readers and for anyone who wants the exact values.

// Chart is what LineChart and Bars draw.
type Chart struct {
	// Title is the chart's accessible name and the table's caption.
	Title string
	// Labels name the points of a line chart (left to right) or the rows of a bar chart.
	Labels []string
	// Series are the values; each has one value per label (missing ones count as 0).
	Series []Series
	// Lang formats the numbers (12,345 or 12 345).
	Lang string
	// Table is the text of the disclosure that shows the numbers ("Show the numbers");
	// Corner heads the table's first column ("Day").
	Table, Corner string
}

// Series is one named line, or one bar in each row.
type Series struct {
	Name   string
	Values []int64
}

// chartPalette holds colours with a contrast of at least 4.5:1 on white; lines also
// differ by dash pattern, so that colour is never the only difference.
var (
	chartPalette = []string{"#0b57d0", "#1e7f3c", "#b3261e", "#8a5a00", "#6b3fa0"}
	chartDashes  = []string{"", "7 4", "2 3", "9 3 2 3", "4 2"}
)

func (c Chart) value(s, i int) int64 {
	if i < len(c.Series[s].Values) {
		return max(c.Series[s].Values[i], 0)
	}
	return 0
}

func (c Chart) max() int64 {
	var m int64
	for s := range c.Series {
		for i := range c.Labels {
			m = max(m, c.value(s, i))
		}
	}
	return m
}

// niceCeil rounds m up to 1, 2, 2.5 or 5 times a power of ten, so that four grid
// lines fall on round numbers.
func niceCeil(m int64) int64 {
	if m <= 4 {
		return 4
	}
	p := int64(1)
	for p*10 < m {
		p *= 10
	}
	for _, f := range []int64{10, 20, 25, 40, 50, 80, 100} {
		if v := p * f / 10; v >= m && v%4 == 0 {
			return v
		}
	}
	return (m + 3) / 4 * 4
}

type svgBuf struct{ strings.Builder }

func (b *svgBuf) text(s string) { b.WriteString(htmltemplate.HTMLEscapeString(s)) }

func (b *svgBuf) num(f float64) { b.WriteString(strconv.FormatFloat(f, 'f', 1, 64)) }

// attrs writes name="value" pairs, values escaped.
func (b *svgBuf) attrs(kv ...any) {
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(" " + kv[i].(string) + `="`)
		switch v := kv[i+1].(type) {
		case float64:
			b.num(v)
		case int:
			b.WriteString(strconv.Itoa(v))
		case string:
			b.text(v)
		}
		b.WriteString(`"`)
	}
}

func (b *svgBuf) open(c Chart, cls string, w, h int) {
	b.WriteString(`<figure class="chart-figure">`)
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" role="img"`)
	b.attrs("class", "chart "+cls, "aria-label", c.Title, "viewBox", "0 0 "+strconv.Itoa(w)+" "+strconv.Itoa(h),
		"width", w, "height", h, "font-size", 12, "font-family", "system-ui, sans-serif")
	b.WriteString(`><title>`)
	b.text(c.Title)
	b.WriteString(`</title>`)
}

// close ends the drawing and adds the legend and the table.
func (b *svgBuf) close(c Chart, line bool) {
	b.WriteString(`</svg>`)
	if len(c.Series) > 1 || line {
		b.WriteString(`<ul class="chart-legend" aria-hidden="true">`)
		for s, se := range c.Series {
			b.WriteString(`<li><svg width="26" height="12" viewBox="0 0 26 12" focusable="false">`)
			if line {
				b.WriteString(`<line x1="1" y1="6" x2="25" y2="6" stroke-width="3"`)
				b.attrs("stroke", chartPalette[s%len(chartPalette)])
				if d := chartDashes[s%len(chartDashes)]; d != "" {
					b.attrs("stroke-dasharray", d)
				}
				b.WriteString(`/>`)
			} else {
				b.WriteString(`<rect x="1" y="1" width="24" height="10" rx="2"`)
				b.attrs("fill", chartPalette[s%len(chartPalette)])
				b.WriteString(`/>`)
			}
			b.WriteString(`</svg>`)
			b.text(se.Name)
			b.WriteString(`</li>`)
		}
		b.WriteString(`</ul>`)
	}
	format := numberFormatter(c.Lang)
	b.WriteString(`<details class="chart-data"><summary>`)
	b.text(c.Table)
	b.WriteString(`</summary><div class="table-wrap" tabindex="0" role="region"`)
	b.attrs("aria-label", c.Title)
	b.WriteString(`><table class="rows"><caption>`)
	b.text(c.Title)
	b.WriteString(`</caption><thead><tr><th scope="col">`)
	b.text(c.Corner)
	b.WriteString(`</th>`)
	for _, se := range c.Series {
		b.WriteString(`<th scope="col" class="num">`)
		b.text(se.Name)
		b.WriteString(`</th>`)
	}
	b.WriteString(`</tr></thead><tbody>`)
	for i, l := range c.Labels {
		b.WriteString(`<tr><th scope="row">`)
		b.text(l)
		b.WriteString(`</th>`)
		for s := range c.Series {
			b.WriteString(`<td class="num">` + format(c.value(s, i)) + `</td>`)
		}
		b.WriteString(`</tr>`)
	}
	b.WriteString(`</tbody></table></div></details></figure>`)
}

// LineChart draws one line per series over the labels (days, say), with a y axis of
// four round steps and at most seven labels on the x axis.
func LineChart(c Chart) htmltemplate.HTML {
	const (
		w, h                  = 560, 230
		left, right, top, bot = 52, 24, 10, 26
	)
	pw, ph := float64(w-left-right), float64(h-top-bot)
	var b svgBuf
	b.open(c, "line", w, h)
	top4 := niceCeil(c.max())
	format := numberFormatter(c.Lang)
	for g := int64(0); g <= 4; g++ {
		y := float64(top) + ph - ph*float64(g)/4
		b.WriteString(`<line stroke="#d0d7de" stroke-width="1"`)
		b.attrs("x1", float64(left), "x2", float64(w-right), "y1", y, "y2", y)
		b.WriteString(`/><text text-anchor="end" fill="#4a5560"`)
		b.attrs("x", float64(left-6), "y", y+4)
		b.WriteString(`>` + format(top4*g/4) + `</text>`)
	}
	n := len(c.Labels)
	x := func(i int) float64 {
		if n <= 1 {
			return float64(left) + pw/2
		}
		return float64(left) + pw*float64(i)/float64(n-1)
	}
	y := func(v int64) float64 { return float64(top) + ph - ph*float64(v)/float64(top4) }
	// At most seven labels, the last (today, say) always among them.
	step := max((n+6)/7, 1)
	for i := n - 1; i >= 0; i -= step {
		anchor := "middle"
		switch {
		case i == n-1 && n > 1:
			anchor = "end"
		case i < step/2+1 && n > 1:
			anchor = "start"
		}
		cls := "x"
		if (n-1-i)/step%2 == 1 {
			cls = "x alt" // every other label: hidden where the chart is small (admin.css)
		}
		b.WriteString(`<text fill="#4a5560"`)
		b.attrs("class", cls, "text-anchor", anchor, "x", x(i), "y", float64(h-8))
		b.WriteString(`>`)
		b.text(c.Labels[i])
		b.WriteString(`</text>`)
	}
	for s := range c.Series {
		if n == 0 {
			break
		}
		colour := chartPalette[s%len(chartPalette)]
		var pts strings.Builder
		for i := range n {
			if i > 0 {
				pts.WriteByte(' ')
			}
			pts.WriteString(strconv.FormatFloat(x(i), 'f', 1, 64) + "," + strconv.FormatFloat(y(c.value(s, i)), 'f', 1, 64))
		}
		b.WriteString(`<polyline fill="none" stroke-width="2.5" stroke-linejoin="round"`)
		b.attrs("class", "series s"+strconv.Itoa(s), "stroke", colour, "points", pts.String())
		if d := chartDashes[s%len(chartDashes)]; d != "" {
			b.attrs("stroke-dasharray", d)
		}
		b.WriteString(`/>`)
		if n <= 40 {
			for i := range n {
				b.WriteString(`<circle r="2.5"`)
				b.attrs("fill", colour, "cx", x(i), "cy", y(c.value(s, i)))
				b.WriteString(`/>`)
			}
		}
	}
	b.close(c, true)
	return htmltemplate.HTML(b.String())
}

// Bars draws a horizontal bar chart: one row per label, one bar per series in each
// row, each bar with its value at its end.
func Bars(c Chart) htmltemplate.HTML {
	const (
		w, labelW, right = 560, 150, 60
		barH, gap, pad   = 14, 3, 10
	)
	rowH := pad + len(c.Series)*(barH+gap)
	h := max(len(c.Labels)*rowH+pad, 2*pad)
	pw := float64(w - labelW - right)
	var b svgBuf
	b.open(c, "bars", w, h)
	m := max(c.max(), 1)
	format := numberFormatter(c.Lang)
	for i, l := range c.Labels {
		y0 := float64(pad + i*rowH)
		label := l
		if r := []rune(label); len(r) > 22 {
			label = string(r[:21]) + "…"
		}
		b.WriteString(`<text fill="#1b1f24" text-anchor="end"`)
		b.attrs("x", float64(labelW-8), "y", y0+float64(len(c.Series)*(barH+gap))/2+4)
		b.WriteString(`>`)
		b.text(label)
		b.WriteString(`</text>`)
		for s := range c.Series {
			v := c.value(s, i)
			bw := pw * float64(v) / float64(m)
			y := y0 + float64(s*(barH+gap))
			b.WriteString(`<rect rx="2"`)
			b.attrs("class", "series s"+strconv.Itoa(s), "fill", chartPalette[s%len(chartPalette)],
				"x", float64(labelW), "y", y, "width", max(bw, 1), "height", float64(barH))
			b.WriteString(`/><text fill="#1b1f24"`)
			b.attrs("x", float64(labelW)+max(bw, 1)+5, "y", y+float64(barH)-3)
			b.WriteString(`>` + format(v) + `</text>`)
		}
	}
	b.close(c, false)
	return htmltemplate.HTML(b.String())
}

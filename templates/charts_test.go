package templates_test

import (
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"

	"consentmail/templates"
)

// element is a parsed XML element, kept whole for the assertions.
type element struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Kids    []element  `xml:",any"`
}

func (e element) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (e element) all(name string) []element {
	var out []element
	for _, k := range e.Kids {
		if k.XMLName.Local == name {
			out = append(out, k)
		}
		out = append(out, k.all(name)...)
	}
	return out
}

// parseChart parses a chart's figure as XML: the SVG must be well-formed, and so is
// the whole figure (the package writes XHTML-compatible markup).
func parseChart(tb testing.TB, html string) element {
	tb.Helper()
	var fig element
	d := xml.NewDecoder(strings.NewReader(html))
	d.Strict = true
	if err := d.Decode(&fig); err != nil {
		tb.Fatalf("chart is not well-formed: %v\n%s", err, html)
	}
	if _, err := d.Token(); err != io.EOF {
		tb.Fatalf("chart has content after its figure: %v", err)
	}
	return fig
}

func TestChartsAreAccessibleSVG(t *testing.T) {
	title := `Sign-ups <by> "day" & source`
	days := templates.Chart{Title: title, Labels: []string{"1 Dec", "2 Dec", "3 Dec", "4 Dec"}, Lang: "fr",
		Table: "Voir les chiffres", Corner: "Jour",
		Series: []templates.Series{{Name: "Inscriptions", Values: []int64{3, 12345, 0, 7}}, {Name: "Confirmées", Values: []int64{1, 2}}}}
	funnel := templates.Chart{Title: "Funnel", Labels: []string{"homepage", strings.Repeat("x", 40)}, Lang: "en",
		Table: "Show the numbers", Corner: "Source",
		Series: []templates.Series{{Name: "Sign-ups", Values: []int64{40, 10}}, {Name: "Confirmed", Values: []int64{30, 0}}}}
	for _, tc := range []struct {
		name   string
		html   string
		marks  string // the drawn marks: polyline or rect
		nMarks int
	}{
		{"line", string(templates.LineChart(days)), "polyline", 2},
		{"bars", string(templates.Bars(funnel)), "rect", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fig := parseChart(t, tc.html)
			if fig.XMLName.Local != "figure" {
				t.Fatalf("root is %s, want figure", fig.XMLName.Local)
			}
			svgs := fig.all("svg")
			if len(svgs) == 0 {
				t.Fatal("no svg")
			}
			svg := svgs[0]
			c := days
			if tc.name == "bars" {
				c = funnel
			}
			if svg.attr("role") != "img" || svg.attr("aria-label") != c.Title {
				t.Errorf("svg role %q aria-label %q; want img and %q", svg.attr("role"), svg.attr("aria-label"), c.Title)
			}
			if ts := svg.all("title"); len(ts) != 1 || ts[0].Text != c.Title {
				t.Errorf("svg title %v, want %q", ts, c.Title)
			}
			if got := len(svg.all(tc.marks)); got != tc.nMarks {
				t.Errorf("%d %s, want %d", got, tc.marks, tc.nMarks)
			}
			if strings.Contains(tc.html, "style=") {
				t.Error("chart has a style attribute (the CSP forbids inline styles)")
			}
			// The table holds every number, formatted in the chart's language.
			tables := fig.all("table")
			if len(tables) != 1 {
				t.Fatalf("%d tables, want 1", len(tables))
			}
			if caps := tables[0].all("caption"); len(caps) != 1 || caps[0].Text != c.Title {
				t.Errorf("table caption %v, want %q", caps, c.Title)
			}
			rows := tables[0].all("tr")
			if len(rows) != len(c.Labels)+1 {
				t.Fatalf("%d table rows, want %d", len(rows), len(c.Labels)+1)
			}
			for i, l := range c.Labels {
				cells := rows[i+1].all("td")
				if th := rows[i+1].all("th"); len(th) != 1 || th[0].Text != l || th[0].attr("scope") != "row" {
					t.Errorf("row %d header %v, want %q", i, th, l)
				}
				for s, se := range c.Series {
					want := "0"
					if i < len(se.Values) {
						want = strconv.FormatInt(se.Values[i], 10)
					}
					if got := strings.ReplaceAll(cells[s].Text, "\u202f", ""); got != want {
						t.Errorf("row %d series %d = %q, want %s", i, s, cells[s].Text, want)
					}
				}
			}
		})
	}
	if html := string(templates.LineChart(days)); !strings.Contains(html, "12\u202f345") {
		t.Error("French chart does not group thousands with a narrow no-break space")
	}
}

// TestBarsAreProportional: a bar's length is its value's share of the largest.
func TestBarsAreProportional(t *testing.T) {
	fig := parseChart(t, string(templates.Bars(templates.Chart{Title: "t", Labels: []string{"a", "b"},
		Series: []templates.Series{{Name: "n", Values: []int64{100, 25}}}})))
	rects := fig.all("svg")[0].all("rect")
	if len(rects) != 2 {
		t.Fatalf("%d bars, want 2", len(rects))
	}
	a, _ := strconv.ParseFloat(rects[0].attr("width"), 64)
	b, _ := strconv.ParseFloat(rects[1].attr("width"), 64)
	if a <= 0 || b/a < 0.24 || b/a > 0.26 {
		t.Errorf("bar widths %v and %v, want b a quarter of a", a, b)
	}
}

// TestLineChartAxis: the y axis ends on a round number at or above the largest value.
func TestLineChartAxis(t *testing.T) {
	for _, tc := range []struct {
		max  int64
		want string
	}{{0, "4"}, {3, "4"}, {37, "40"}, {123, "200"}, {9, "12"}, {1001, "2,000"}} {
		fig := parseChart(t, string(templates.LineChart(templates.Chart{Title: "t", Labels: []string{"a", "b"}, Lang: "en",
			Series: []templates.Series{{Name: "n", Values: []int64{0, tc.max}}}})))
		var texts []string
		for _, e := range fig.all("svg")[0].all("text") {
			texts = append(texts, e.Text)
		}
		if !strings.Contains(strings.Join(texts, "|"), "|"+tc.want+"|") {
			t.Errorf("max %d: axis labels %v lack %s", tc.max, texts, tc.want)
		}
	}
}

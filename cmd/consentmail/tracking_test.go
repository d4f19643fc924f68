package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"consentmail/mailer/smtptest"
	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

// grantTracking records, in the data directory dir (no server may hold it), that
// subscriber consents to open and click tracking.
func grantTracking(tb testing.TB, dir, subscriber string) {
	tb.Helper()
	store, done := openTestStore(tb, dir)
	defer done()
	yes := true
	if _, err := store.ChangePreferences(context.Background(), preferences.PreferenceChange{Subscriber: subscriber, Tracking: &yes,
		Method: "preference_centre"}, nil); err != nil {
		tb.Fatal(err)
	}
}

type hitStats struct {
	Status string `json:"status"`
	Stats  struct {
		Sent          int64 `json:"sent"`
		Opens         int64 `json:"opens"`
		Clicks        int64 `json:"clicks"`
		MachineOpens  int64 `json:"machine_opens"`
		MachineClicks int64 `json:"machine_clicks"`
	} `json:"stats"`
}

func (c *client) hitStats(id string) hitStats {
	c.tb.Helper()
	var v hitStats
	if st := c.admin("GET", "/api/v1/campaigns/"+id, "", &v); st != http.StatusOK {
		c.tb.Fatalf("get campaign %s: status %d", id, st)
	}
	return v
}

var (
	pixelSrc  = regexp.MustCompile(`<img src="(http://[^"]+/t/o/[^"]+)"`)
	clickHref = regexp.MustCompile(`href="(http://[^"]+/t/c/[^"]+)"`)
)

// The whole tracking path in one server: workers sign with the key the routes verify
// with, hits show in the campaign's stats about a second later, and those counted just
// before a shutdown are not lost; a scanner's click and Apple's proxy's open count
// apart from people's.
func TestTrackingEndToEnd(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	audience := seedAudience(t, dir, "weekly", "track", 2)
	const tracked, untracked = "track-0000@example.org", "track-0001@example.org"
	grantTracking(t, dir, audience[tracked])
	env := serveEnv(dir, sink.URL())
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)

	const target = "https://shop.example.com/spring?x=1&y=2"
	body, _ := json.Marshal(map[string]any{"name": "Spring", "subject": "Spring news", "lists": []string{"weekly"}, "track": true,
		"html": `<p>Hello {{.Subscriber.Name}}, see <a href="https://shop.example.com/spring?x=1&amp;y=2">the spring range</a>.</p>`})
	var created hitStats
	var ids struct{ ID string }
	if st := c.admin("POST", "/api/v1/campaigns", string(body), &ids); st != http.StatusCreated {
		t.Fatalf("create campaign: %d", st)
	}
	if st := c.admin("POST", "/api/v1/campaigns/"+ids.ID+"/start", "", &created); st != http.StatusOK {
		t.Fatalf("start campaign: %d", st)
	}
	waitUntil(t, func() bool { return c.hitStats(ids.ID).Status == "finished" })

	var pixel, click string
	received := sink.WaitFor(t, 2, 10*time.Second)
	delivered := time.Now() // the messages were made before
	for _, m := range received {
		p, l := pixelSrc.FindStringSubmatch(m.HTML), clickHref.FindStringSubmatch(m.HTML)
		switch m.To[0] {
		case tracked:
			if p == nil || l == nil {
				t.Fatalf("mail to %s (tracking granted) has no pixel or click link:\n%s", tracked, m.HTML)
			}
			pixel, click = p[1], strings.ReplaceAll(l[1], "&amp;", "&")
		case untracked:
			if p != nil || l != nil || strings.Contains(m.HTML, "/t/") || !strings.Contains(m.HTML, `href="`+strings.ReplaceAll(target, "&", "&amp;")+`"`) {
				t.Errorf("mail to %s (no tracking consent) is tracked:\n%s", untracked, m.HTML)
			}
		}
	}
	if st, _ := c.do("GET", pixel, "", ""); st != http.StatusOK {
		t.Errorf("GET pixel: %d", st)
	}
	if st, _ := c.do("GET", pixel, "", "", "User-Agent", "Mozilla/5.0"); st != http.StatusOK { // Apple's privacy proxy
		t.Errorf("GET pixel as Apple's proxy: %d", st)
	}
	// A gateway follows the link on delivery, and gets there.
	if st, _ := c.do("GET", click, "", "", "User-Agent", "Mozilla/5.0 (compatible; Mimecast URL Protect)"); st != http.StatusFound {
		t.Errorf("GET click link as a scanner: %d, want 302", st)
	}
	// The person clicks later: a click within ClickOnDelivery of the message being made
	// is a scanner's, and a real server's clock cannot be moved.
	time.Sleep(time.Until(delivered.Add(campaigns.ClickOnDelivery)))
	res, err := c.http.Get(click)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != target || res.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("GET click link: %d, Location %q, Referrer-Policy %q; want 302 to %s", res.StatusCode,
			res.Header.Get("Location"), res.Header.Get("Referrer-Policy"), target)
	}
	if st, _ := c.do("GET", srv.BaseURL+"/t/c/garbage", "", ""); st != http.StatusBadRequest {
		t.Errorf("GET /t/c/garbage: %d, want 400", st)
	}
	waitUntil(t, func() bool {
		s := c.hitStats(ids.ID).Stats
		return s.Opens == 1 && s.Clicks == 1 && s.MachineOpens == 1 && s.MachineClicks == 1
	})

	// A hit, then at once a graceful stop: the count is written on the way out.
	if st, _ := c.do("GET", pixel, "", ""); st != http.StatusOK {
		t.Errorf("GET pixel: %d", st)
	}
	srv.Stop(t)
	srv = startServer(t, env, "serve")
	if s := newClient(t, srv.BaseURL).hitStats(ids.ID).Stats; s.Opens != 2 || s.Clicks != 1 || s.Sent != 2 || s.MachineOpens != 1 || s.MachineClicks != 1 {
		t.Errorf("after a restart: stats %+v, want 2 sent, 2 opens, 1 click, 1 machine open, 1 machine click", s)
	}
}

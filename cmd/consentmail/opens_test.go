package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A look at a tracked campaign message in the dev inbox is no open: the page shows
// it without its pixel, fetched as HTML and in a real browser, and the campaign's
// opens stay 0.
func TestDevInboxIsNoOpen(t *testing.T) {
	dir := t.TempDir()
	audience := seedAudience(t, dir, "weekly", "look", 1)
	const to = "look-0000@example.org"
	grantTracking(t, dir, audience[to])
	env := serveEnv(dir, "")
	delete(env, "CONSENTMAIL_SMTP_URL")
	env["CONSENTMAIL_DEV_SMTP_ADDR"] = "127.0.0.1:0"
	srv := startServer(t, env, "dev")
	b := newBrowser(t) // after the server: closed before it
	c := newClient(t, srv.BaseURL)

	body, _ := json.Marshal(map[string]any{"name": "Look", "subject": "Have a look", "lists": []string{"weekly"}, "track": true,
		"html": `<p>Hello, see <a href="https://shop.example.com/spring">the spring range</a>.</p>`})
	var ids struct{ ID string }
	if st := c.admin("POST", "/api/v1/campaigns", string(body), &ids); st != http.StatusCreated {
		t.Fatalf("create campaign: %d", st)
	}
	if st := c.admin("POST", "/api/v1/campaigns/"+ids.ID+"/start", "", nil); st != http.StatusOK {
		t.Fatalf("start campaign: %d", st)
	}
	var inbox struct {
		Items []struct {
			ID   string `json:"id"`
			HTML string `json:"html"`
		} `json:"items"`
	}
	waitUntil(t, func() bool {
		_, body := c.do("GET", "/dev/inbox.json", "", "")
		return json.Unmarshal([]byte(body), &inbox) == nil && len(inbox.Items) == 1
	})
	if m := pixelSrc.FindStringSubmatch(inbox.Items[0].HTML); m == nil {
		t.Fatalf("the caught message has no pixel, nothing to test:\n%s", inbox.Items[0].HTML)
	}
	st, page := c.do("GET", "/dev/inbox/"+inbox.Items[0].ID, "", "")
	if st != http.StatusOK || strings.Contains(page, "/t/o/") || !strings.Contains(page, "/t/c/") {
		t.Errorf("GET /dev/inbox/%s: %d, want 200 and the message without its pixel (its click link kept):\n%s", inbox.Items[0].ID, st, page)
	}

	ctx := b.tab(t)
	if st := open(t, ctx, srv.BaseURL+"/dev/inbox/"+inbox.Items[0].ID); st != 200 {
		t.Fatalf("open the message in the browser: status %d", st)
	}
	do(t, ctx, "wait for the frame", chromedp.WaitReady(chromedp.CSS("iframe")))
	if text := frameText(t, ctx); !strings.Contains(text, "the spring range") {
		t.Errorf("the HTML part's frame shows %q, want the message", text)
	}
	shot(t, ctx, "dev-4-tracked-message")
	// Hits are written about every second: give a wrong one time to show.
	time.Sleep(1500 * time.Millisecond)
	waitUntil(t, func() bool { return c.hitStats(ids.ID).Status == "finished" })
	if s := c.hitStats(ids.ID).Stats; s.Opens != 0 || s.MachineOpens != 0 || s.Clicks != 0 {
		t.Errorf("after a look in the dev inbox: stats %+v, want no opens at all", s)
	}
}

package campaigns_test

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/queue/campaigns"
)

const (
	chromeUA    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
	appleMailUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
	gmailUA     = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)

func TestMachineHit(t *testing.T) {
	apple := netip.MustParseAddr("17.58.101.23")
	home := netip.MustParseAddr("203.0.113.9")
	const none = time.Duration(-1)
	for _, tc := range []struct {
		name string
		hit  campaigns.Hit
		want string
	}{
		{"a person opens", campaigns.Hit{Method: "GET", UserAgent: appleMailUA, IP: home, SinceSent: time.Hour, SincePrevClick: none}, ""},
		{"a person opens at once", campaigns.Hit{Method: "GET", UserAgent: chromeUA, IP: home, SinceSent: 0, SincePrevClick: none}, ""},
		{"Gmail's proxy fetches on open: a person", campaigns.Hit{Method: "GET", UserAgent: gmailUA, SinceSent: time.Minute, SincePrevClick: none}, ""},
		{"Yahoo's proxy likewise", campaigns.Hit{Method: "GET", UserAgent: "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", SinceSent: time.Minute, SincePrevClick: none}, ""},
		{"a HEAD", campaigns.Hit{Method: "HEAD", UserAgent: chromeUA, SinceSent: time.Hour, SincePrevClick: none}, campaigns.MachineHead},
		{"a HEAD click", campaigns.Hit{Click: true, Method: "HEAD", UserAgent: chromeUA, SinceSent: time.Hour, SincePrevClick: none}, campaigns.MachineHead},
		{"Apple's proxy by its agent", campaigns.Hit{Method: "GET", UserAgent: "Mozilla/5.0", IP: home, SinceSent: time.Hour, SincePrevClick: none}, campaigns.MachineAppleProxy},
		{"Apple's proxy by its network", campaigns.Hit{Method: "GET", UserAgent: appleMailUA, IP: apple, SinceSent: time.Hour, SincePrevClick: none}, campaigns.MachineAppleProxy},
		{"Apple's network, mapped IPv6", campaigns.Hit{Method: "GET", UserAgent: appleMailUA, IP: netip.MustParseAddr("::ffff:17.1.2.3"), SinceSent: time.Hour, SincePrevClick: none}, campaigns.MachineAppleProxy},
		{"a click from Apple's network is a person's", campaigns.Hit{Click: true, Method: "GET", UserAgent: appleMailUA, IP: apple, SinceSent: time.Hour, SincePrevClick: none}, ""},
		{"Barracuda", campaigns.Hit{Click: true, Method: "GET", UserAgent: "Barracuda Sentinel (EE)", SinceSent: time.Hour, SincePrevClick: none}, campaigns.MachineScannerAgent},
		{"Mimecast opens", campaigns.Hit{Method: "GET", UserAgent: "Mozilla/5.0 Mimecast-URL-Protect", SinceSent: time.Hour, SincePrevClick: none}, campaigns.MachineScannerAgent},
		{"Proofpoint", campaigns.Hit{Click: true, Method: "GET", UserAgent: "proofpoint url defense", SinceSent: time.Hour, SincePrevClick: none}, campaigns.MachineScannerAgent},
		{"BingPreview", campaigns.Hit{Click: true, Method: "GET", UserAgent: "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 BingPreview/1.0b", SinceSent: time.Hour, SincePrevClick: none}, campaigns.MachineScannerAgent},
		{"curl", campaigns.Hit{Click: true, Method: "GET", UserAgent: "curl/8.5.0", SinceSent: time.Hour, SincePrevClick: none}, campaigns.MachineScannerAgent},
		{"a click on delivery", campaigns.Hit{Click: true, Method: "GET", UserAgent: chromeUA, SinceSent: 2 * time.Second, SincePrevClick: none}, campaigns.MachineOnDelivery},
		{"a click soon after", campaigns.Hit{Click: true, Method: "GET", UserAgent: chromeUA, SinceSent: campaigns.ClickOnDelivery, SincePrevClick: none}, ""},
		{"sending time unknown", campaigns.Hit{Click: true, Method: "GET", UserAgent: chromeUA, SinceSent: none, SincePrevClick: none}, ""},
		{"a burst of clicks", campaigns.Hit{Click: true, Method: "GET", UserAgent: chromeUA, SinceSent: time.Hour, SincePrevClick: 300 * time.Millisecond}, campaigns.MachineClickBurst},
		{"two clicks a while apart", campaigns.Hit{Click: true, Method: "GET", UserAgent: chromeUA, SinceSent: time.Hour, SincePrevClick: campaigns.ClickBurst}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := campaigns.MachineHit(tc.hit); got != tc.want {
				t.Errorf("MachineHit(%+v) = %q, want %q", tc.hit, got, tc.want)
			}
		})
	}
}

// setClock is a clock tests set.
type setClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *setClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *setClock) set(t time.Time)     { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *setClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func hitAs(tb testing.TB, app *fiber.App, u, userAgent string) {
	tb.Helper()
	req := httptest.NewRequest("GET", strings.TrimPrefix(u, "https://mail.example.org"), nil)
	req.Header.Set("User-Agent", userAgent)
	res, err := app.Test(req, -1)
	if err != nil {
		tb.Fatalf("GET %s: %v", u, err)
	}
	res.Body.Close()
	if res.StatusCode != 200 && res.StatusCode != 302 {
		tb.Fatalf("GET %s: %d", u, res.StatusCode)
	}
}

// Hits of machines count apart from people's, and a scanner's click still leads to
// the link (it must reach the URL to judge it).
func TestTrackingTellsMachinesApart(t *testing.T) {
	e := newSendEnv(t, modeBolt, envOptions{})
	e.list("news")
	yes := e.subscribe("yes@example.org", true, "news")
	e.setTracking(yes, true)
	clock := &setClock{}
	app := e.trackingApp(clock.now)
	sent := time.Now()
	c, mail := e.send(campaigns.Input{Lists: []string{"news"}, HTML: trackedHTML, Track: true})
	pixel, clicks := tracked(t, mail["yes@example.org"], true)

	want := func(opens, clicks, machineOpens, machineClicks int64) {
		t.Helper()
		if s := e.stats(c.ID); s.Opens != opens || s.Clicks != clicks || s.MachineOpens != machineOpens || s.MachineClicks != machineClicks {
			t.Fatalf("stats opens %d, clicks %d, machine_opens %d, machine_clicks %d; want %d, %d, %d, %d",
				s.Opens, s.Clicks, s.MachineOpens, s.MachineClicks, opens, clicks, machineOpens, machineClicks)
		}
	}
	// On delivery: Apple's proxy fetches the pixel, a gateway follows both links.
	clock.set(sent.Add(time.Second))
	hitAs(t, app, pixel, "Mozilla/5.0")
	hitAs(t, app, clicks[0], chromeUA)
	wantRedirect(t, hit(t, app, "GET", clicks[1]), blog)
	want(0, 0, 1, 2)

	// The person opens through Gmail's proxy, and clicks.
	clock.set(sent.Add(10 * time.Minute))
	hitAs(t, app, pixel, gmailUA)
	hitAs(t, app, clicks[0], chromeUA)
	want(1, 1, 1, 2)

	// A scanner follows every link within a second: the click before is its too.
	clock.add(5 * time.Second)
	hitAs(t, app, clicks[0], chromeUA)
	clock.add(200 * time.Millisecond)
	hitAs(t, app, clicks[1], chromeUA)
	clock.add(200 * time.Millisecond)
	hitAs(t, app, clicks[0], chromeUA)
	want(1, 1, 1, 5)

	// The same link twice in a row is a person clicking again; a scanner that says
	// who it is is a machine whenever it comes.
	clock.add(5 * time.Second)
	hitAs(t, app, clicks[1], chromeUA)
	clock.add(300 * time.Millisecond)
	hitAs(t, app, clicks[1], chromeUA)
	clock.add(time.Hour)
	hitAs(t, app, clicks[0], "Mimecast URL protect")
	want(1, 3, 1, 6)
}

package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"consentmail/mailer/smtptest"
)

// Fiber hands out path parameters, queries, headers and bodies as views into buffers it
// reuses for the next request. A list edited through PATCH /api/v1/lists/{id} once
// kept such a view as its id in the store's list cache: later requests overwrote it,
// and the list vanished for signups, the hosted form, reads and campaigns until a
// restart. This test edits a list, then uses it hundreds of times among requests with
// other path parameters and bodies, from several clients at once.
func TestListSurvivesReusedRequestBuffers(t *testing.T) {
	srv := startServer(t, serveEnv(t.TempDir(), smtptest.New(t).URL()), "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("offers")
	c.createList("weekly")

	const name = "Offers of the week"
	var l struct{ ID, Name, Purpose string }
	for _, patch := range []string{
		`{"purpose":"Our best offers, twice a month."}`,
		`{"name":"` + name + `","consent_text":"I want the offers by email.","privacy_url":"https://shop.example/privacy","retention_days":400}`,
	} {
		if st := c.admin("PATCH", "/api/v1/lists/offers", patch, &l); st != http.StatusOK || l.ID != "offers" {
			t.Fatalf("PATCH %s: %d %+v, want 200 with id offers", patch, st, l)
		}
	}

	const clients, rounds = 4, 50 // 200 rounds in all
	t.Run("rounds", func(t *testing.T) {
		for w := range clients {
			t.Run(fmt.Sprint("client", w), func(t *testing.T) {
				t.Parallel()
				c := newClient(t, srv.BaseURL)
				for i := range rounds {
					useOffers(t, c, name, w, i)
				}
			})
		}
	})

	var page struct{ Items []struct{ ID, Name string } }
	if st := c.admin("GET", "/api/v1/lists", "", &page); st != http.StatusOK || len(page.Items) != 2 ||
		page.Items[0].ID != "offers" || page.Items[0].Name != name || page.Items[1].ID != "weekly" {
		t.Fatalf("GET /api/v1/lists: %d %+v, want offers (%s) and weekly", st, page.Items, name)
	}
}

// useOffers is one round: the list offers is used in every way, each use after a
// request whose path parameter or body is different and of a similar length.
func useOffers(tb testing.TB, c *client, name string, w, i int) {
	tb.Helper()
	noise := fmt.Sprintf("x%d-%03d", w, i)
	if st := c.admin("PATCH", "/api/v1/lists/weekly", fmt.Sprintf(`{"purpose":"News, round %s."}`, noise), nil); st != http.StatusOK {
		tb.Fatalf("PATCH weekly: %d", st)
	}
	c.signup(fmt.Sprintf("buffers-%s@example.org", noise), "offers")

	if st, _ := c.do("GET", "/subscribe/"+noise, "", ""); st != http.StatusNotFound {
		tb.Fatalf("GET /subscribe/%s: %d, want 404", noise, st)
	}
	st, body := c.do("GET", "/subscribe/offers", "", "")
	if st != http.StatusOK || !strings.Contains(body, name) || !strings.Contains(body, `name="lists" value="offers"`) {
		tb.Fatalf("GET /subscribe/offers: %d, want 200 with the list's name and id:\n%s", st, body)
	}

	if st := c.admin("GET", "/api/v1/lists/"+noise, "", nil); st != http.StatusNotFound {
		tb.Fatalf("GET /api/v1/lists/%s: %d, want 404", noise, st)
	}
	var l struct{ ID, Name string }
	if st := c.admin("GET", "/api/v1/lists/offers", "", &l); st != http.StatusOK || l.ID != "offers" || l.Name != name {
		tb.Fatalf("GET /api/v1/lists/offers: %d %+v, want 200 with id offers", st, l)
	}

	if st, _ := c.do("POST", "/api/v1/signups", "application/json",
		fmt.Sprintf(`{"email":"noise-%s@example.org","lists":[%q],"consent":true}`, noise, noise)); st != http.StatusUnprocessableEntity {
		tb.Fatalf("signup to the unknown list %s: %d, want 422", noise, st)
	}
	c.startCampaign("offers", "Offers "+noise)
}

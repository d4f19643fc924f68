package adminpages_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

// rows counts the events a ledger page shows.
func rows(p page) int { return strings.Count(p.body, `<td><details><summary>`) }

func TestLedgerBrowser(t *testing.T) {
	st := newSite(t)
	people := st.seed(t) // 6 events on 14 March 2026
	st.s.Clock.Advance(48 * time.Hour)
	for i := range 55 { // 55 signups on 16 March
		preftest.Signup(t, st.s, preftest.SignupInput(fmt.Sprintf("p%02d@example.org", i), "weekly"))
	}
	all := st.events(t, "", "")

	p := st.get(t, "dpo", "/admin/dpo/ledger")
	p.want(t, 200, "Signed up", "192.0.2.1", "test-agent/1.0", "Yes, send me the weekly news.", all[0].Hash)
	if n := rows(p); n != 50 {
		t.Errorf("first page: %d events, want 50", n)
	}
	p.want(t, 200, `href="/admin/dpo/ledger?cursor=50"`)
	if n := rows(st.get(t, "dpo", "/admin/dpo/ledger?cursor=50")); n != len(all)-50 {
		t.Errorf("second page: %d events, want %d", n, len(all)-50)
	}

	p = st.get(t, "dpo", "/admin/dpo/ledger?subscriber="+people[2].id)
	if n := rows(p); n != 3 {
		t.Errorf("Cy's events: %d, want 3 (signup, confirmed, unsubscribed)", n)
	}
	if n := rows(st.get(t, "dpo", "/admin/dpo/ledger?type=confirmed")); n != 2 {
		t.Errorf("confirmed events: %d, want 2", n)
	}
	// Time range: the days are UTC and both included.
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"from=2026-03-14&to=2026-03-14", 6},
		{"to=2026-03-15", 6},
		{"from=2026-03-15", 50}, // a page
		{"from=2026-03-16&to=2026-03-16&type=confirmed", 0},
		{"from=2026-03-17", 0},
		{"from=2026-03-14&type=unsubscribed", 1},
	} {
		if n := rows(st.get(t, "dpo", "/admin/dpo/ledger?"+tc.query)); n != tc.want {
			t.Errorf("%s: %d events, want %d", tc.query, n, tc.want)
		}
	}
	// A bounded range pages within the range.
	p = st.get(t, "dpo", "/admin/dpo/ledger?from=2026-03-16&to=2026-03-16")
	if rows(p) != 50 || !strings.Contains(p.body, `rel="next"`) {
		t.Errorf("first page of the 16th: %d events, next link %v", rows(p), strings.Contains(p.body, `rel="next"`))
	}
	p = st.get(t, "dpo", "/admin/dpo/ledger?from=2026-03-14&to=2026-03-14&cursor=3")
	if rows(p) != 3 || strings.Contains(p.body, `rel="next"`) {
		t.Errorf("rest of the 14th: %d events (want 3), next link %v", rows(p), strings.Contains(p.body, `rel="next"`))
	}
	st.get(t, "dpo", "/admin/dpo/ledger?from=14/03/2026&type=nothing").
		want(t, 422, "Enter a date such as", "Choose an event from the list.", `value="14/03/2026"`)
}

func TestVerifyShowsTheChain(t *testing.T) {
	st := newSite(t)
	st.seed(t)
	res := preftest.Verify(t, st.s)
	st.get(t, "dpo", "/admin/dpo/verify").want(t, 200, "The ledger is intact", res.Head, ">6</dd>")

	// A byte of event 2 changed underneath the store (the database is shared with it).
	err := st.s.DB.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(preftest.LedgerBucket))
		v := bytes.Clone(b.Get(preftest.SeqKey(2)))
		v[70] ^= 0x01
		return b.Put(preftest.SeqKey(2), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	st.get(t, "dpo", "/admin/dpo/verify").want(t, 200, "The ledger is broken", "#2", "hash does not match content")
}

func TestRegisterPageAndDownloads(t *testing.T) {
	st := newSite(t)
	st.seed(t)
	p := st.get(t, "dpo", "/admin/dpo/register")
	p.want(t, 200, "Acme SAS", "dpo@acme.test", "Weekly news", "smtp.relay.test (email relay", preferences.LegalBasisConsent,
		"suppression list", `href="/admin/dpo/register.json"`, `href="/admin/dpo/register.md"`)
	j := st.get(t, "dpo", "/admin/dpo/register.json")
	var r preferences.Register
	if err := json.Unmarshal([]byte(j.body), &r); err != nil || len(r.Activities) != 1 || r.Controller != "Acme SAS" {
		t.Errorf("register.json: %v %+v", err, r)
	}
	if !strings.Contains(j.header.Get("Content-Disposition"), "register.json") {
		t.Errorf("register.json is not a download: %v", j.header)
	}
	md := st.get(t, "dpo", "/admin/dpo/register.md")
	if !strings.HasPrefix(md.body, "# Record of processing activities") || !strings.HasPrefix(md.header.Get("Content-Type"), "text/markdown") {
		t.Errorf("register.md: %s %q", md.header.Get("Content-Type"), md.body[:min(80, len(md.body))])
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
	"consentmail/preferences"
	"consentmail/preferences/linktoken"
)

const bounceDomain = "bounces.example.org"

// inboundFixture reads a report of mailer/inbound/testdata with its placeholders
// filled: @@RCPT@@ the envelope token, @@REF@@ the token in the quoted message.
func inboundFixture(tb testing.TB, name, rcpt, ref string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "mailer", "inbound", "testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("@@RCPT@@"), []byte(rcpt))
	return bytes.ReplaceAll(b, []byte("@@REF@@"), []byte(ref))
}

// startInboundServer runs serve with inbound SMTP on, over n people subscribed to
// weekly and offers (seedTwoLists), relaying into a sink: the people, a client, the
// inbound server's address and the sink.
func startInboundServer(t *testing.T, prefix string, n int) (map[string]string, *client, string, *smtptest.Sink) {
	t.Helper()
	sink := smtptest.New(t)
	dir := t.TempDir()
	people := seedTwoLists(t, dir, prefix, n)
	env := serveEnv(dir, sink.URL())
	env["CONSENTMAIL_INBOUND_SMTP_ADDR"] = "127.0.0.1:0"
	env["CONSENTMAIL_BOUNCE_DOMAIN"] = bounceDomain
	srv := startServer(t, env, "serve")
	addr := srv.Stdout.waitFor(t, regexp.MustCompile(`inbound SMTP on (\S+)`), srv.done)
	return people, newClient(t, srv.BaseURL), addr, sink
}

// seedTwoLists subscribes n people, confirmed, to the lists weekly and offers.
func seedTwoLists(tb testing.TB, dir, prefix string, n int) map[string]string {
	tb.Helper()
	ctx := context.Background()
	store, done := openTestStore(tb, dir)
	defer done()
	for _, id := range []string{"weekly", "offers"} {
		if _, err := store.CreateList(ctx, preferences.List{ID: id, Name: id, Purpose: "News.", ConsentText: "I want " + id + ".",
			Public: true}); err != nil {
			tb.Fatal(err)
		}
	}
	out := map[string]string{}
	for i := range n {
		addr := fmt.Sprintf("%s-%04d@example.org", prefix, i)
		var req preferences.OptinRequest
		err := store.Signup(ctx, preferences.SignupInput{Email: addr, IndexKey: addr, Name: "Person", Locale: "en",
			Lists: []string{"weekly", "offers"}, Source: "test"},
			func(_ *bbolt.Tx, r preferences.OptinRequest) error { req = r; return nil })
		if err == nil {
			_, err = store.Confirm(ctx, preferences.ConfirmInput{Subscriber: req.Subscriber, Lists: req.Lists, Nonce: req.Nonce})
		}
		if err != nil {
			tb.Fatal(err)
		}
		out[addr] = req.Subscriber
	}
	return out
}

type subscriberView struct {
	Status        string `json:"status"`
	Subscriptions []struct {
		List   string `json:"list"`
		Status string `json:"status"`
	} `json:"subscriptions"`
}

func (c *client) subscriberState(id string) (string, map[string]string) {
	c.tb.Helper()
	var v subscriberView
	if st := c.admin("GET", "/api/v1/subscribers/"+id, "", &v); st != http.StatusOK {
		c.tb.Fatalf("get subscriber %s: %d", id, st)
	}
	subs := map[string]string{}
	for _, s := range v.Subscriptions {
		subs[s.List] = s.Status
	}
	return v.Status, subs
}

type campaignCounters struct {
	Stats struct {
		Audience, Sent, Bounced, Complained, Unsubscribed int64
	} `json:"stats"`
}

// TestInboundBounceComplaintMailtoEndToEnd delivers real DSN and ARF reports over SMTP
// to the inbound server started by run(): hard bounces block and the next campaign
// skips the person, three soft bounces block, a complaint unsubscribes from every
// list, a mail to unsubscribe+ unsubscribes, forged, unknown and foreign recipients
// get 550 at RCPT, an oversized message is refused, and what cannot be read is
// quarantined and listed.
func TestInboundBounceComplaintMailtoEndToEnd(t *testing.T) {
	people, c, addr, sink := startInboundServer(t, "inb", 8)

	campaign := c.startCampaign("weekly", "Winter news")
	c.waitFinished(campaign)
	signer := inboundSigner([]byte(testSecret))
	person := func(i int) string {
		return people[strings.Replace("inb-000X@example.org", "X", string(rune('0'+i)), 1)]
	}
	bounceTok := func(i int) string {
		tok, err := linktoken.Bounce(signer, person(i), campaign)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	deliver := func(rcpt string, raw []byte) {
		t.Helper()
		if err := smtptest.Deliver(addr, rcpt, raw); err != nil {
			t.Fatalf("deliver to %s: %v", rcpt, err)
		}
	}
	bounceTo := func(i int) string { return "bounce+" + bounceTok(i) + "@" + bounceDomain }

	// Hard bounces as Postfix, Gmail, Outlook, Exim and Yahoo send them.
	for _, tc := range []struct {
		file string
		who  int
	}{{"postfix_hard.eml", 0}, {"gmail_hard.eml", 1}, {"outlook_hard.eml", 2}, {"exim_hard.eml", 0}, {"yahoo_hard.eml", 1}} {
		deliver(bounceTo(tc.who), inboundFixture(t, tc.file, bounceTok(tc.who), bounceTok(tc.who)))
	}
	for i := range 3 {
		if st, _ := c.subscriberState(person(i)); st != "blocked" {
			t.Errorf("person %d after a hard bounce: %s, want blocked", i, st)
		}
	}
	bounced := c.ledger("type=bounced&subscriber=" + person(0))
	if len(bounced) != 2 || bounced[0].Details["status"] != "5.1.1" || bounced[0].Details["campaign"] != campaign ||
		bounced[0].Details["recipient"] != "nobody@example.net" {
		t.Errorf("bounced events of person 0: %+v, want two, the first 5.1.1 for the campaign with its recipient", bounced)
	}

	// Three soft bounces block; two do not.
	for n := 1; n <= 3; n++ {
		deliver(bounceTo(3), inboundFixture(t, "postfix_delayed.eml", bounceTok(3), bounceTok(3)))
		st, _ := c.subscriberState(person(3))
		if want := map[bool]string{true: "blocked", false: "active"}[n == 3]; st != want {
			t.Errorf("after %d soft bounces: %s, want %s", n, st, want)
		}
	}

	// A complaint at the feedback-loop address names the message by its header, another
	// at the return path: unsubscribed from every list.
	deliver("fbl@"+bounceDomain, inboundFixture(t, "arf_yahoo.eml", "", bounceTok(4)))
	deliver(bounceTo(4), inboundFixture(t, "arf_headers_only.eml", "", bounceTok(4)))
	if st, subs := c.subscriberState(person(4)); st != "active" || subs["weekly"] != "unsubscribed" || subs["offers"] != "unsubscribed" {
		t.Errorf("after a complaint: %s %v, want every list unsubscribed", st, subs)
	}
	if evs := c.ledger("type=complained&subscriber=" + person(4)); len(evs) != 2 || evs[0].Details["feedback_type"] != "abuse" {
		t.Errorf("complained events %+v, want two abuse reports", evs)
	}

	// mailto unsubscribe: the campaign's lists.
	unsubTok, err := linktoken.MailUnsubscribe(signer, person(5), campaign)
	if err != nil {
		t.Fatal(err)
	}
	deliver("unsubscribe+"+unsubTok+"@"+bounceDomain, []byte("From: inb-0005@example.org\r\nTo: unsubscribe@"+bounceDomain+
		"\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n"))
	if _, subs := c.subscriberState(person(5)); subs["weekly"] != "unsubscribed" || subs["offers"] != "confirmed" {
		t.Errorf("after mailto: %v, want weekly unsubscribed, offers kept", subs)
	}
	if evs := c.ledger("type=unsubscribed&subscriber=" + person(5)); len(evs) != 1 || evs[0].Details["method"] != "mailto" {
		t.Errorf("unsubscribed events %+v, want one with method mailto", evs)
	}

	var stats campaignCounters
	c.admin("GET", "/api/v1/campaigns/"+campaign, "", &stats)
	if s := stats.Stats; s.Bounced != 4 || s.Complained != 1 || s.Unsubscribed != 1 {
		t.Errorf("campaign stats %+v, want bounced 4, complained 1, unsubscribed 1", s)
	}

	// Unknown, forged and foreign recipients: 550 at RCPT.
	forged := []byte(bounceTok(6))
	forged[5] ^= 1
	for _, rcpt := range []string{
		"bounce+" + string(forged) + "@" + bounceDomain,
		"unsubscribe+" + bounceTok(6) + "@" + bounceDomain, // a bounce token is no unsubscribe token
		"bounce+nonsense@" + bounceDomain,
		"postmaster@" + bounceDomain,
		"bounce+" + bounceTok(6) + "@elsewhere.example.net",
	} {
		if err := smtptest.Deliver(addr, rcpt, inboundFixture(t, "postfix_hard.eml", "", "")); smtptest.Code(err) != 550 {
			t.Errorf("RCPT %s: %v, want 550", rcpt, err)
		}
	}
	if st, _ := c.subscriberState(person(6)); st != "active" {
		t.Errorf("person 6 after refused mail: %s, want active", st)
	}

	// Oversized: refused.
	big := append(inboundFixture(t, "postfix_hard.eml", bounceTok(6), bounceTok(6)), bytes.Repeat([]byte("0123456789abcdef\r\n"), 11<<20/18)...)
	if err := smtptest.Deliver(addr, bounceTo(6), big); smtptest.Code(err) != 552 {
		t.Errorf("11 MiB message: %v, want 552", err)
	}
	if st, _ := c.subscriberState(person(6)); st != "active" {
		t.Errorf("person 6 after an oversized bounce: %s, want active", st)
	}

	// What cannot be parsed or matched is kept and listed.
	deliver(bounceTo(7), inboundFixture(t, "out_of_office.eml", bounceTok(7), ""))
	deliver("fbl@"+bounceDomain, inboundFixture(t, "garbled_report.eml", "", ""))
	var q struct {
		Count    int `json:"count"`
		Messages []struct {
			Reason  string   `json:"reason"`
			To      []string `json:"rcpt_to"`
			Message string   `json:"message"`
		} `json:"messages"`
	}
	if st := c.admin("GET", "/api/v1/inbound/quarantine", "", &q); st != http.StatusOK || q.Count != 2 ||
		!strings.Contains(q.Messages[0].Message, "out of the office") || q.Messages[0].Reason == "" {
		t.Errorf("quarantine: %d %+v, want the two messages with reasons", st, q)
	}

	// The next campaign skips the blocked, the complainer and the unsubscribed.
	next := c.startCampaign("weekly", "Spring news")
	final := c.waitFinished(next)
	if final.Stats.Queued != 2 || final.Stats.Sent != 2 {
		t.Errorf("next campaign stats %+v, want queued and sent 2", final.Stats)
	}
	for _, m := range sink.Messages() {
		if m.Subject == "Spring news" && m.To[0] != "inb-0006@example.org" && m.To[0] != "inb-0007@example.org" {
			t.Errorf("%s received the next campaign", m.To[0])
		}
	}
	var verify struct {
		OK bool `json:"ok"`
	}
	if c.admin("GET", "/api/v1/ledger/verify", "", &verify); !verify.OK {
		t.Error("ledger does not verify")
	}
}

// The loop closes on what the relay really saw: with inbound SMTP on, each campaign
// message carries its own return path, a mailto List-Unsubscribe beside the https one,
// the reference header and a Feedback-ID; a bounce sent to that return path blocks
// the person, and a mail to that mailto address unsubscribes the other.
func TestCampaignMessagesCarryTheirInboundAddresses(t *testing.T) {
	people, c, addr, sink := startInboundServer(t, "loop", 2)
	campaign := c.startCampaign("weekly", "Loop news")
	c.waitFinished(campaign)

	byAddr := map[string]mailer.CaughtMessage{}
	for _, m := range sink.WaitFor(t, 2, 10*time.Second) {
		byAddr[m.To[0]] = m
	}
	mailto := regexp.MustCompile(`^<mailto:(unsubscribe\+[a-z0-9]+@` + regexp.QuoteMeta(bounceDomain) + `)>, <https?://\S+/u/\S+>$`)
	for a, m := range byAddr {
		if !strings.HasPrefix(m.From, "bounce+") || !strings.HasSuffix(m.From, "@"+bounceDomain) {
			t.Errorf("%s: return path %q, want bounce+TOKEN@%s", a, m.From, bounceDomain)
		}
		if !mailto.MatchString(m.Header.Get("List-Unsubscribe")) {
			t.Errorf("%s: List-Unsubscribe %q, want the mailto and the https link", a, m.Header.Get("List-Unsubscribe"))
		}
		if ref := m.Header.Get("X-Consentmail-Ref"); ref == "" || !strings.Contains(m.From, ref) {
			t.Errorf("%s: reference header %q, want the return path's token", a, ref)
		}
		if fid := m.Header.Get("Feedback-ID"); !strings.HasPrefix(fid, campaign+":weekly:") {
			t.Errorf("%s: Feedback-ID %q", a, fid)
		}
	}
	first, second := byAddr["loop-0000@example.org"], byAddr["loop-0001@example.org"]
	tok := strings.TrimSuffix(strings.TrimPrefix(first.From, "bounce+"), "@"+bounceDomain)
	if err := smtptest.Deliver(addr, first.From, inboundFixture(t, "postfix_hard.eml", tok, tok)); err != nil {
		t.Fatalf("bounce to the message's return path: %v", err)
	}
	if st, _ := c.subscriberState(people["loop-0000@example.org"]); st != "blocked" {
		t.Errorf("after a bounce to its return path: %s, want blocked", st)
	}
	to := mailto.FindStringSubmatch(second.Header.Get("List-Unsubscribe"))[1]
	if err := smtptest.Deliver(addr, to, []byte("Subject: unsubscribe\r\n\r\nplease\r\n")); err != nil {
		t.Fatalf("mail to the List-Unsubscribe mailto: %v", err)
	}
	if _, subs := c.subscriberState(people["loop-0001@example.org"]); subs["weekly"] != "unsubscribed" {
		t.Errorf("after mail to the mailto address: %v, want weekly unsubscribed", subs)
	}
}

package optin_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/optin"
	"consentmail/preferences"
)

// formOf encodes a JSON-style signup as the API's urlencoded form: lists repeat,
// attributes become attributes.KEY.
func formOf(tb testing.TB, m map[string]any) url.Values {
	tb.Helper()
	v := url.Values{}
	for k, x := range m {
		switch x := x.(type) {
		case string:
			v.Set(k, x)
		case bool:
			v.Set(k, strconv.FormatBool(x))
		case []string:
			for _, s := range x {
				v.Add(k, s)
			}
		case map[string]any:
			for ak, av := range x {
				v.Set(k+"."+ak, fmt.Sprint(av))
			}
		default:
			tb.Fatalf("field %s: %T has no form encoding", k, x)
		}
	}
	return v
}

// longAddress returns a syntactically valid address of exactly n bytes (n ≥ 80).
func longAddress(n int) string {
	local := strings.Repeat("a", 64)
	tail := ".org"
	rest := n - len(local) - 1 - len(tail)
	var labels []string
	for rest > 0 {
		l := min(rest, 63)
		if rest-l == 1 { // a label needs a dot before it; never leave a lone byte
			l--
		}
		labels = append(labels, strings.Repeat("b", l))
		rest -= l + 1
	}
	return local + "@" + strings.Join(labels, ".") + tail
}

// attrs returns n attributes of size bytes each.
func attrs(n, size int) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = strings.Repeat("x", size)
	}
	return m
}

func TestSignupValidation(t *testing.T) {
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	tests := []struct {
		name     string
		change   func(map[string]any)
		field    string // the field named in the 422; "" means the signup is accepted
		mention  string // text the field's message must contain
		jsonOnly bool   // not expressible as a form
	}{
		{name: "valid", change: func(map[string]any) {}},
		{name: "consent missing", change: del("consent"), field: "consent"},
		{name: "consent false", change: set("consent", false), field: "consent"},
		{name: "consent the string true", change: set("consent", "true"), field: "consent", jsonOnly: true},
		{name: "consent 1", change: set("consent", 1), field: "consent", jsonOnly: true},
		{name: "consent on", change: set("consent", "on"), field: "consent"},
		{name: "unknown list", change: set("lists", []string{"no-such-list"}), field: "lists", mention: "no-such-list"},
		{name: "private list", change: set("lists", []string{"internal"}), field: "lists", mention: "internal"},
		{name: "unknown among known", change: set("lists", []string{"newsletter", "ghost"}), field: "lists", mention: "ghost"},
		{name: "list id not a slug", change: set("lists", []string{"News Letter"}), field: "lists"},
		{name: "no lists", change: del("lists"), field: "lists"},
		{name: "empty lists", change: set("lists", []string{}), field: "lists", jsonOnly: true},
		{name: "lists not an array", change: set("lists", 7), field: "lists", jsonOnly: true},
		{name: "email missing", change: del("email"), field: "email"},
		{name: "email not a string", change: set("email", 5), field: "email", jsonOnly: true},
		{name: "email 254 bytes", change: set("email", longAddress(254))},
		{name: "email 255 bytes", change: set("email", longAddress(255)), field: "email"},
		{name: "name 200 characters", change: set("name", strings.Repeat("é", 200))},
		{name: "name 201 characters", change: set("name", strings.Repeat("é", 201)), field: "name"},
		{name: "attributes up to 4 KiB", change: set("attributes", attrs(4, 900))},
		{name: "attributes over 4 KiB", change: set("attributes", attrs(5, 900)), field: "attributes"},
		{name: "attributes an array", change: set("attributes", []string{"a"}), field: "attributes", jsonOnly: true},
		{name: "attributes a string", change: set("attributes", "city=Lyon"), field: "attributes", jsonOnly: true},
		{name: "attributes nested object", change: set("attributes", map[string]any{"address": map[string]any{"city": "Lyon"}}),
			field: "attributes", jsonOnly: true},
		{name: "attribute value an array", change: set("attributes", map[string]any{"tags": []string{"a"}}), field: "attributes", jsonOnly: true},
		{name: "attribute key not an identifier", change: set("attributes", map[string]any{"my city": "Lyon"}), field: "attributes"},
		{name: "locale not a language tag", change: set("locale", "not a locale"), field: "locale"},
	}
	for _, enc := range []string{"json", "form"} {
		t.Run(enc, func(t *testing.T) {
			for _, tc := range tests {
				if enc == "form" && tc.jsonOnly {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					e := newEnv(t)
					body := signup("ana@example.org")
					tc.change(body)
					var r response
					if enc == "json" {
						r = e.signupJSON(t, body)
					} else {
						r = e.postForm(t, "/api/v1/signups", formOf(t, body))
					}
					if tc.field == "" {
						wantPending(t, r)
						return
					}
					fields := wantError(t, r, fiber.StatusUnprocessableEntity, "validation_failed")
					msg, ok := fields[tc.field]
					if !ok {
						t.Fatalf("fields: got %v, want %q named", fields, tc.field)
					}
					if !strings.Contains(msg, tc.mention) {
						t.Errorf("fields[%s]: got %q, want it to name %q", tc.field, msg, tc.mention)
					}
					e.wantNothingStored(t)
				})
			}
		})
	}
}

func TestSignupRejectsBadEmails(t *testing.T) {
	bad := []struct{ name, email string }{
		{"no at", "ana.example.org"},
		{"two at", "ana@b@example.org"},
		{"space in local part", "ana maria@example.org"},
		{"space in domain", "ana@exa mple.org"},
		{"leading dot", ".ana@example.org"},
		{"trailing dot in local part", "ana.@example.org"},
		{"consecutive dots in local part", "an..a@example.org"},
		{"consecutive dots in domain", "ana@example..org"},
		{"no dot in domain", "ana@localhost"},
		{"all-digit TLD", "ana@example.123"},
		{"IP literal", "ana@[192.0.2.1]"},
		{"dotted quad", "ana@192.0.2.1"},
		{"quoted local part", `"ana"@example.org`},
		{"quoted local part with space", `"ana maria"@example.org`},
		{"display-name form", "Ana <ana@example.org>"},
		{"angle brackets", "<ana@example.org>"},
		{"comment", "ana@example.org (Ana)"},
		{"two addresses", "ana@example.org,bob@example.org"},
		{"empty local part", "@example.org"},
		{"empty domain", "ana@"},
		{"hyphen-led label", "ana@-example.org"},
		{"underscore in domain", "ana@ex_ample.org"},
		{"local part of 65", strings.Repeat("a", 65) + "@example.org"},
		{"255 bytes", longAddress(255)},
		{"300 bytes", strings.Repeat("a", 64) + "@" + strings.Repeat("b.", 116) + "org"},
		{"NUL", "ana\x00@example.org"},
		{"tab", "ana\t@example.org"},
		{"invalid UTF-8 in domain", "ana@exa\xffmple.org"},
	}
	for _, tc := range bad {
		for _, enc := range []string{"json", "form"} {
			t.Run(tc.name+"/"+enc, func(t *testing.T) {
				e := newEnv(t)
				body := signup(tc.email)
				var r response
				if enc == "json" {
					r = e.signupJSON(t, body)
				} else {
					r = e.postForm(t, "/api/v1/signups", formOf(t, body))
				}
				fields := wantError(t, r, fiber.StatusUnprocessableEntity, "validation_failed")
				if _, ok := fields["email"]; !ok {
					t.Errorf("fields: got %v, want email named", fields)
				}
				e.wantNothingStored(t)
			})
		}
	}
}

// A header can never be smuggled into the confirmation mail through any field.
func TestSignupRefusesHeaderInjection(t *testing.T) {
	tests := []struct {
		name  string
		field string
		set   func(map[string]any)
	}{
		{"CRLF in name", "name", func(m map[string]any) { m["name"] = "Ana\r\nBcc: x@y.org" }},
		{"LF in name", "name", func(m map[string]any) { m["name"] = "Ana\nBcc: x@y.org" }},
		{"CR in name", "name", func(m map[string]any) { m["name"] = "Ana\rBcc: x@y.org" }},
		{"line separator in name", "name", func(m map[string]any) { m["name"] = "Ana\u2028Bcc: x@y.org" }},
		{"CRLF in email", "email", func(m map[string]any) { m["email"] = "a@b.org\r\nBcc: x@y.org" }},
		{"LF in email", "email", func(m map[string]any) { m["email"] = "a@b.org\nBcc: x@y.org" }},
		{"CRLF in source", "source", func(m map[string]any) { m["source"] = "footer\r\nBcc: x@y.org" }},
		{"CRLF in attribute value", "attributes", func(m map[string]any) {
			m["attributes"] = map[string]any{"city": "Lyon\r\nBcc: x@y.org"}
		}},
		{"LF in attribute value", "attributes", func(m map[string]any) { m["attributes"] = map[string]any{"city": "Lyon\nX: y"} }},
		{"CRLF in attribute key", "attributes", func(m map[string]any) { m["attributes"] = map[string]any{"ci\r\nty": "Lyon"} }},
		{"CRLF in locale", "locale", func(m map[string]any) { m["locale"] = "fr\r\nBcc: x@y.org" }},
	}
	for _, tc := range tests {
		for _, enc := range []string{"json", "form"} {
			t.Run(tc.name+"/"+enc, func(t *testing.T) {
				e := newEnv(t)
				body := signup("ana@example.org")
				tc.set(body)
				var r response
				if enc == "json" {
					r = e.signupJSON(t, body)
				} else {
					r = e.postForm(t, "/api/v1/signups", formOf(t, body))
				}
				fields := wantError(t, r, fiber.StatusUnprocessableEntity, "validation_failed")
				if _, ok := fields[tc.field]; !ok {
					t.Errorf("fields: got %v, want %q named", fields, tc.field)
				}
				e.wantNothingStored(t)
			})
		}
	}
}

func TestSignupBodyLimits(t *testing.T) {
	jsonOfSize := func(n int) []byte {
		head := `{"email":"ana@example.org","lists":["newsletter"],"consent":true,"padding":"`
		return []byte(head + strings.Repeat("x", n-len(head)-2) + `"}`)
	}
	formOfSize := func(n int) []byte {
		head := "email=ana%40example.org&lists=newsletter&consent=true&padding="
		return []byte(head + strings.Repeat("x", n-len(head)))
	}
	tests := []struct {
		name string
		ct   string
		body []byte
		want int
	}{
		{"json of 16 KiB", "application/json", jsonOfSize(optin.MaxBody), fiber.StatusAccepted},
		{"json of 16 KiB + 1", "application/json", jsonOfSize(optin.MaxBody + 1), fiber.StatusRequestEntityTooLarge},
		{"json of 1 MiB", "application/json", jsonOfSize(1 << 20), fiber.StatusRequestEntityTooLarge},
		{"form of 16 KiB", "application/x-www-form-urlencoded", formOfSize(optin.MaxBody), fiber.StatusAccepted},
		{"form of 16 KiB + 1", "application/x-www-form-urlencoded", formOfSize(optin.MaxBody + 1), fiber.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.body) != optin.MaxBody && len(tc.body) != optin.MaxBody+1 && len(tc.body) != 1<<20 {
				t.Fatalf("test body: got %d bytes", len(tc.body))
			}
			e := newEnv(t)
			r := e.do(t, http.MethodPost, "/api/v1/signups", tc.ct, tc.body)
			if tc.want == fiber.StatusAccepted {
				wantPending(t, r)
				return
			}
			wantError(t, r, tc.want, "too_large")
			e.wantNothingStored(t)
		})
	}
}

func TestSignupContentTypes(t *testing.T) {
	valid := `{"email":"ana@example.org","lists":["newsletter"],"consent":true}`
	form := "email=ana%40example.org&lists=newsletter&consent=true"
	tests := []struct {
		name, ct, body string
		want           int
		code           string
	}{
		{"json", "application/json", valid, fiber.StatusAccepted, ""},
		{"json with charset", "application/json; charset=utf-8", valid, fiber.StatusAccepted, ""},
		// RFC 9110 §8.3.1: type and subtype are case-insensitive.
		{"json in upper case", "Application/JSON", valid, fiber.StatusAccepted, ""},
		{"form", "application/x-www-form-urlencoded", form, fiber.StatusAccepted, ""},
		{"form with charset", "application/x-www-form-urlencoded; charset=UTF-8", form, fiber.StatusAccepted, ""},
		{"form with comma-separated lists", "application/x-www-form-urlencoded",
			"email=ana%40example.org&lists=newsletter%2Cnewsletter&consent=true", fiber.StatusAccepted, ""},
		{"text", "text/plain", valid, fiber.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"none", "", valid, fiber.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"multipart", "multipart/form-data; boundary=x", "--x--", fiber.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"xml", "application/xml", "<signup/>", fiber.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"truncated json", "application/json", `{"email":`, fiber.StatusBadRequest, "bad_json"},
		{"empty json", "application/json", ``, fiber.StatusBadRequest, "bad_json"},
		{"json array", "application/json", `[]`, fiber.StatusBadRequest, "bad_json"},
		{"json null", "application/json", `null`, fiber.StatusBadRequest, "bad_json"},
		{"json string", "application/json", `"ana@example.org"`, fiber.StatusBadRequest, "bad_json"},
		{"json with trailing garbage", "application/json", valid + `garbage`, fiber.StatusBadRequest, "bad_json"},
		{"two json objects", "application/json", valid + ` {"consent":false}`, fiber.StatusBadRequest, "bad_json"},
		{"bad percent escape", "application/x-www-form-urlencoded", "email=%zz&consent=true", fiber.StatusBadRequest, "bad_form"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.do(t, http.MethodPost, "/api/v1/signups", tc.ct, []byte(tc.body))
			if tc.want == fiber.StatusAccepted {
				wantPending(t, r)
				return
			}
			wantError(t, r, tc.want, tc.code)
			e.wantNothingStored(t)
		})
	}
}

// headersOf returns r's headers without Date.
func headersOf(r response) http.Header {
	h := r.header.Clone()
	h.Del("Date")
	return h
}

// The answer to a well-formed signup never tells whether the address is known.
func TestSignupAnswerNeverTells(t *testing.T) {
	e := newEnv(t)
	ref := e.mustAccept(t, signup("first-time@example.org"))
	tests := []struct {
		name  string
		email string
		setup func(t *testing.T, email string)
	}{
		{"new", "new@example.org", func(*testing.T, string) {}},
		{"pending, mail queued", "queued@example.org", func(t *testing.T, email string) {
			e.mustAccept(t, signup(email))
		}},
		{"pending, mail sent", "sent@example.org", func(t *testing.T, email string) {
			e.subscribe(t, signup(email))
		}},
		{"pending for over ten minutes", "old@example.org", func(t *testing.T, email string) {
			e.subscribe(t, signup(email))
			e.clock.Advance(time.Hour)
		}},
		{"confirmed", "confirmed@example.org", func(t *testing.T, email string) {
			sub, tok := e.subscribe(t, signup(email))
			wantHTML(t, e.post(t, confirmPath(tok)), fiber.StatusOK)
			if got := e.subStatus(t, sub, "newsletter"); got != preferences.SubConfirmed {
				t.Fatalf("subscription: got %q, want confirmed", got)
			}
		}},
		{"unsubscribed", "gone@example.org", func(t *testing.T, email string) {
			sub, tok := e.subscribe(t, signup(email))
			wantHTML(t, e.post(t, confirmPath(tok)), fiber.StatusOK)
			changed, err := e.store.Unsubscribe(context.Background(), preferences.UnsubscribeInput{
				Subscriber: sub, Method: "api", Actor: "test"})
			if err != nil || len(changed) != 1 {
				t.Fatalf("Unsubscribe: %v %v, want [newsletter]", changed, err)
			}
			if got := e.subStatus(t, sub, "newsletter"); got != preferences.SubUnsubscribed {
				t.Fatalf("subscription: got %q, want unsubscribed", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.deliver(t) // mails of earlier rows are not this row's
			tc.setup(t, tc.email)
			r := e.signupJSON(t, signup(tc.email))
			wantPending(t, r)
			if string(r.body) != string(ref.body) {
				t.Errorf("body: got %q, want byte-identical %q", r.body, ref.body)
			}
			if got, want := headersOf(r), headersOf(ref); !maps.EqualFunc(got, want, slices.Equal) {
				t.Errorf("headers: got %v, want %v", got, want)
			}
		})
	}
}

func TestSignupHoneypot(t *testing.T) {
	tests := []struct {
		name string
		send func(t *testing.T, e *env) response
	}{
		{"json", func(t *testing.T, e *env) response {
			body := signup("bot@example.org")
			body["website"] = "http://spam.example"
			return e.signupJSON(t, body)
		}},
		{"form", func(t *testing.T, e *env) response {
			body := signup("bot@example.org")
			body["website"] = "http://spam.example"
			return e.postForm(t, "/api/v1/signups", formOf(t, body))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := newEnv(t).mustAccept(t, signup("person@example.org"))
			e := newEnv(t)
			r := tc.send(t, e)
			wantPending(t, r)
			if got, want := headersOf(r), headersOf(ref); !maps.EqualFunc(got, want, slices.Equal) {
				t.Errorf("headers: got %v, want those of a real signup %v", got, want)
			}
			e.wantNothingStored(t)
		})
	}
}

func TestSignupRateLimit(t *testing.T) {
	e := newEnv(t, func(c *optin.Config) { c.SignupRate = optin.Rate{N: 3, Per: time.Minute} })
	const ip, other = "203.0.113.5", "203.0.113.6"
	for i := range 3 {
		e.mustAccept(t, signup(fmt.Sprintf("a%d@example.org", i)), withIP(ip))
	}
	r := e.signupJSON(t, signup("a3@example.org"), withIP(ip))
	wantError(t, r, fiber.StatusTooManyRequests, "rate_limited")
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After: got %q, want whole seconds in [1, 60]", r.header.Get("Retry-After"))
	}
	if got := len(e.events(t, preferences.EventSignup)); got != 3 {
		t.Errorf("signup events after the refused one: got %d, want 3", got)
	}

	t.Run("hosted form shares the budget", func(t *testing.T) {
		r := e.postForm(t, "/subscribe/newsletter", url.Values{"email": {"f@example.org"}, "consent": {"true"}}, withIP(ip))
		wantHTML(t, r, fiber.StatusTooManyRequests)
		if r.header.Get("Retry-After") == "" {
			t.Errorf("Retry-After: got none, want one")
		}
	})
	t.Run("another address is not limited", func(t *testing.T) {
		e.mustAccept(t, signup("b0@example.org"), withIP(other))
	})
	t.Run("accepted again a minute later", func(t *testing.T) {
		e.clock.Advance(time.Minute)
		e.mustAccept(t, signup("a3@example.org"), withIP(ip))
	})
}

// A pending address gets at most one confirmation mail per ten minutes, and every
// signup is recorded anyway.
func TestSignupResendInterval(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		name       string
		advance    time.Duration
		wantQueued int64
	}{
		{"first signup", 0, 1},
		{"one minute later", time.Minute, 1},
		{"9m59s after the first", 8*time.Minute + 59*time.Second, 1},
		{"ten minutes after the first", time.Second, 2},
		{"right after the second mail", time.Second, 2},
	}
	for i, s := range steps {
		e.clock.Advance(s.advance)
		e.mustAccept(t, signup("ana@example.org"))
		if got := e.ready(t); got != s.wantQueued {
			t.Fatalf("%s: queued mails: got %d, want %d", s.name, got, s.wantQueued)
		}
		if got := len(e.events(t, preferences.EventSignup)); got != i+1 {
			t.Fatalf("%s: signup events: got %d, want %d", s.name, got, i+1)
		}
	}
	mails := e.deliver(t)
	if len(mails) != 2 {
		t.Fatalf("mails sent: got %d, want 2", len(mails))
	}
	// Both mails belong to the same opt-in round: the older link still works.
	r := e.post(t, confirmPath(tokenOf(t, mails[0])))
	wantHTML(t, r, fiber.StatusOK)
	if got := len(e.events(t, preferences.EventConfirmed)); got != 1 {
		t.Errorf("confirmed events: got %d, want 1", got)
	}
}

// Addresses that differ only in case or in the IDN form of the domain are one person.
func TestSignupSamePerson(t *testing.T) {
	tests := []struct {
		first, second string
		same          bool
	}{
		{"ana@example.org", "ana@EXAMPLE.ORG", true},
		{"ana@Example.Org", "ana@example.org", true},
		{"Ana@example.org", "ana@example.org", true},
		{"ana@bücher.example", "ana@xn--bcher-kva.example", true},
		{"ana@BÜCHER.example", "ana@bücher.example", true},
		{"ana@example.org", " ana@example.org ", true},
		{"ana@example.org", "anna@example.org", false},
		{"ana@example.org", "ana@example.com", false},
	}
	for _, tc := range tests {
		t.Run(tc.first+" and "+tc.second, func(t *testing.T) {
			e := newEnv(t)
			e.mustAccept(t, signup(tc.first))
			e.mustAccept(t, signup(tc.second))
			evs := e.events(t, preferences.EventSignup)
			if len(evs) != 2 {
				t.Fatalf("signup events: got %d, want 2", len(evs))
			}
			if same := evs[0].Subscriber == evs[1].Subscriber; same != tc.same {
				t.Errorf("same subscriber: got %v (%s, %s), want %v", same, evs[0].Subscriber, evs[1].Subscriber, tc.same)
			}
			want := int64(2)
			if tc.same {
				want = 1 // the second signup is within ten minutes of the first mail
			}
			if got := e.ready(t); got != want {
				t.Errorf("queued mails: got %d, want %d", got, want)
			}
		})
	}
}

// The confirmation mail goes to the normalised address.
func TestSignupNormalisedRecipient(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ana@bücher.example", "ana@xn--bcher-kva.example"},
		{"ana@BÜCHER.EXAMPLE", "ana@xn--bcher-kva.example"},
		{"Ana@EXAMPLE.org", "Ana@example.org"},
		{"  ana@example.org\t", "ana@example.org"},
		{"ana@example.org.", "ana@example.org"},
		{"o'brien+news@example.org", "o'brien+news@example.org"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			e := newEnv(t)
			e.mustAccept(t, signup(tc.in))
			m := e.deliverOne(t)
			if !slices.Equal(m.To, []string{tc.want}) {
				t.Errorf("envelope recipients: got %q, want [%q]", m.To, tc.want)
			}
			sub, err := e.store.Subscriber(context.Background(), e.subscriberOf(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if sub.Email != tc.want {
				t.Errorf("stored email: got %q, want %q", sub.Email, tc.want)
			}
		})
	}
}

// The signup event records what the contract lists: lists, the consent text version,
// source, IP, user agent, time.
func TestSignupLedgerEvent(t *testing.T) {
	e := newEnv(t)
	body := signup("ana@example.org")
	body["source"] = "footer-form"
	e.mustAccept(t, body, withIP("192.0.2.44"), withUA("Mozilla/5.0 (test)"))
	evs := e.events(t, preferences.EventSignup)
	if len(evs) != 1 {
		t.Fatalf("signup events: got %d, want 1", len(evs))
	}
	ev := evs[0]
	l, err := e.store.List(context.Background(), "newsletter")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ what, got, want string }{
		{"lists", strings.Join(ev.Lists, ","), "newsletter"},
		{"ip", ev.IP, "192.0.2.44"},
		{"user agent", ev.UserAgent, "Mozilla/5.0 (test)"},
		{"source", ev.Details["source"], "footer-form"},
		{"consent version", ev.Details["consent_version.newsletter"], l.ConsentVersion},
		{"time", ev.At.UTC().Format(time.RFC3339), start.Format(time.RFC3339)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("signup event %s: got %q, want %q", c.what, c.got, c.want)
		}
	}
}

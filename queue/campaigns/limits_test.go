package campaigns_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

// nestedItems ranges three deep over the subscriber's attribute "items": harmless on
// sample data (no attributes), 200³ iterations for someone with 200 items.
const nestedItems = `<p>Hi{{range .Subscriber.Attributes.items}}{{range $.Subscriber.Attributes.items}}` +
	`{{range $.Subscriber.Attributes.items}}{{$x := 1}}{{end}}{{end}}{{end}}</p>`

// manyItems is the attributes of a subscriber on whom nestedItems goes over the limits.
func manyItems(tb testing.TB) json.RawMessage {
	tb.Helper()
	raw, err := json.Marshal(map[string]any{"items": make([]int, 200)})
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// Templates that would pin a core or exhaust memory are refused at save with 422 and
// the line, and nothing is stored.
func TestUnboundedTemplatesAreRefused(t *testing.T) {
	for _, tc := range []struct{ name, html, want string }{
		{"three nested ranges of 10000", "<html><body>\n<p>Hi</p>\n{{range 10000}}{{range 10000}}{{range 10000}}{{end}}{{end}}{{end}}\n</body></html>",
			"line 3: "},
		{"a string doubled in a loop", "<html><body>\n{{$s := \"xx\"}}{{range 30}}{{$s = printf \"%s%s\" $s $s}}{{end}}\n<p>{{len $s}}</p>\n</body></html>",
			"line 2: printf would make a value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fields := errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates",
				map[string]any{"name": "x", "subject": "News", "html": tc.html}), http.StatusUnprocessableEntity, "validation_failed")
			if msg, _ := fields["html"].(string); !strings.HasPrefix(msg, tc.want) {
				t.Errorf("fields.html = %q, want it to start with %q", msg, tc.want)
			}
			if n := e.countTemplates(t); n != 0 {
				t.Errorf("%d templates stored, want 0", n)
			}
		})
	}
}

// A template that passes on sample data but goes over the limits on a subscriber's
// data: the preview for that subscriber answers 422, bounded, naming the limit.
func TestPreviewOverTheLimits(t *testing.T) {
	e := newEnv(t)
	id := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates",
		map[string]any{"name": "x", "subject": "News", "html": nestedItems}), http.StatusCreated)["id"].(string)
	sub := e.mustSubscriber(t, "Ana", "en")
	_, err := e.prefs.Rectify(context.Background(), preferences.Rectification{Subscriber: sub, Attributes: manyItems(t), Actor: "test"},
		func(*bbolt.Tx, preferences.OptinRequest) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	fields := errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates/"+id+"/preview", map[string]any{"subscriber": sub}),
		http.StatusUnprocessableEntity, "validation_failed")
	if msg, _ := fields["subscriber"].(string); !strings.Contains(msg, "steps of work") && !strings.Contains(msg, "runs longer") {
		t.Errorf("fields.subscriber = %q, want it to name the limit", msg)
	}
	wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates/"+id+"/preview", nil), http.StatusOK)
}

// A campaign whose template goes over the limits on one recipient's data records that
// recipient's message as failed and sends the others.
func TestCampaignTemplateOverTheLimitsFailsOneRecipient(t *testing.T) {
	e := newSendEnv(t, modeBolt, envOptions{})
	e.list("news")
	addrs := e.audience("news", 5)
	heavy := addrs[2]
	_, err := e.prefs.Rectify(e.ctx, preferences.Rectification{Subscriber: e.subs[heavy], Attributes: manyItems(t), Actor: "test"},
		func(*bbolt.Tx, preferences.OptinRequest) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	c := e.create(campaigns.Input{Lists: []string{"news"}, HTML: nestedItems})
	e.act(c.ID, campaigns.ActionStart)
	done := e.waitStatus(c.ID, campaigns.StatusFinished)
	if s := done.Stats; s.Sent != 4 || s.Failed != 1 {
		t.Errorf("stats %+v, want 4 sent and 1 failed", s)
	}
	got := e.received()
	for _, a := range addrs {
		want := 1
		if a == heavy {
			want = 0
		}
		if got[a] != want {
			t.Errorf("%s received %d messages, want %d", a, got[a], want)
		}
	}
}

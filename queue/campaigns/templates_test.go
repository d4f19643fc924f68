package campaigns_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"consentmail/preferences"
)

func validBody(name string) map[string]any {
	return map[string]any{"name": name, "subject": "Hello {{.Subscriber.Name}}",
		"html": "<html><body><p>Hi {{.Subscriber.Name}} from {{.Subscriber.Attributes.city}}</p></body></html>"}
}

func TestCRUDRoundTrip(t *testing.T) {
	e := newEnv(t)
	created := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates", validBody("Spring")), http.StatusCreated)
	id, _ := created["id"].(string)
	if !strings.HasPrefix(id, "tpl_") {
		t.Fatalf("id = %q, want tpl_…", id)
	}
	if created["created_at"] != "2026-03-14T09:26:53Z" {
		t.Errorf("created_at = %v, want the clock's time", created["created_at"])
	}

	got := wantStatus(t, e.do(t, preferences.RoleViewer, "GET", "/api/v1/templates/"+id, nil), http.StatusOK)
	if got["name"] != "Spring" || got["subject"] != "Hello {{.Subscriber.Name}}" {
		t.Errorf("GET = %v, want what was created", got)
	}

	upd := validBody("Summer")
	upd["text"] = "Hi {{.Subscriber.Name}}"
	got = wantStatus(t, e.do(t, preferences.RoleAdmin, "PUT", "/api/v1/templates/"+id, upd), http.StatusOK)
	if got["name"] != "Summer" || got["text"] != "Hi {{.Subscriber.Name}}" || got["id"] != id {
		t.Errorf("PUT = %v, want the new name and text under the same id", got)
	}
	got = wantStatus(t, e.do(t, preferences.RoleDPO, "GET", "/api/v1/templates/"+id, nil), http.StatusOK)
	if got["name"] != "Summer" {
		t.Errorf("GET after PUT: name = %v, want Summer", got["name"])
	}

	wantStatus(t, e.do(t, preferences.RoleMarketer, "DELETE", "/api/v1/templates/"+id, nil), http.StatusNoContent)
	errorFields(t, e.do(t, preferences.RoleMarketer, "GET", "/api/v1/templates/"+id, nil), http.StatusNotFound, "not_found")
	errorFields(t, e.do(t, preferences.RoleMarketer, "DELETE", "/api/v1/templates/"+id, nil), http.StatusNotFound, "not_found")
	errorFields(t, e.do(t, preferences.RoleMarketer, "PUT", "/api/v1/templates/"+id, upd), http.StatusNotFound, "not_found")
}

func TestInvalidTemplatesAreNotStored(t *testing.T) {
	tests := []struct {
		name      string
		body      any
		status    int
		code      string
		field     string
		wantInMsg string
	}{
		{"syntax error on line 3 of the HTML",
			map[string]any{"name": "x", "subject": "s", "html": "<html><body>\n<p>one</p>\n<p>{{end}}</p>\n</body></html>"},
			http.StatusUnprocessableEntity, "validation_failed", "html", "line 3"},
		{"misspelled field",
			map[string]any{"name": "x", "subject": "s", "html": "<p>{{.Subscriber.Nmae}}</p>"},
			http.StatusUnprocessableEntity, "validation_failed", "html", "Nmae"},
		{"subject on two lines",
			map[string]any{"name": "x", "subject": "a\nb", "html": "<p>x</p>"},
			http.StatusUnprocessableEntity, "validation_failed", "subject", "one line"},
		{"bad text part",
			map[string]any{"name": "x", "subject": "s", "html": "<p>x</p>", "text": "ok\n{{.Nope}}"},
			http.StatusUnprocessableEntity, "validation_failed", "text", "line 2"},
		{"no name",
			map[string]any{"subject": "s", "html": "<p>x</p>"},
			http.StatusUnprocessableEntity, "validation_failed", "name", "required"},
		{"long name",
			map[string]any{"name": strings.Repeat("n", 201), "subject": "s", "html": "<p>x</p>"},
			http.StatusUnprocessableEntity, "validation_failed", "name", "200"},
		{"name on two lines",
			map[string]any{"name": "a\nb", "subject": "s", "html": "<p>x</p>"},
			http.StatusUnprocessableEntity, "validation_failed", "name", "one line"},
		{"bad JSON", `{"name": `, http.StatusBadRequest, "bad_json", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fields := errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates", tc.body), tc.status, tc.code)
			if tc.field != "" {
				msg, _ := fields[tc.field].(string)
				if !strings.Contains(msg, tc.wantInMsg) {
					t.Errorf("fields = %v, want fields.%s mentioning %q", fields, tc.field, tc.wantInMsg)
				}
			}
			if n := e.countTemplates(t); n != 0 {
				t.Errorf("%d templates stored, want 0", n)
			}
		})
	}
}

func TestUpdateWithInvalidTemplateKeepsOld(t *testing.T) {
	e := newEnv(t)
	id := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates", validBody("Keep")), http.StatusCreated)["id"].(string)
	bad := validBody("Keep")
	bad["html"] = "<p>{{.Subscriber.Nmae}}</p>"
	errorFields(t, e.do(t, preferences.RoleMarketer, "PUT", "/api/v1/templates/"+id, bad), http.StatusUnprocessableEntity, "validation_failed")
	got := wantStatus(t, e.do(t, preferences.RoleMarketer, "GET", "/api/v1/templates/"+id, nil), http.StatusOK)
	if got["html"] != validBody("")["html"] {
		t.Errorf("html = %v, want the old one", got["html"])
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t)
	id := wantStatus(t, e.do(t, preferences.RoleAdmin, "POST", "/api/v1/templates", validBody("R")), http.StatusCreated)["id"].(string)
	tests := []struct {
		role, method, path string
		body               any
		want               int
	}{
		{"", "GET", "/api/v1/templates", nil, http.StatusUnauthorized},
		{"", "POST", "/api/v1/templates", validBody("x"), http.StatusUnauthorized},
		{preferences.RoleViewer, "POST", "/api/v1/templates", validBody("x"), http.StatusForbidden},
		{preferences.RoleViewer, "PUT", "/api/v1/templates/" + id, validBody("x"), http.StatusForbidden},
		{preferences.RoleViewer, "DELETE", "/api/v1/templates/" + id, nil, http.StatusForbidden},
		{preferences.RoleViewer, "POST", "/api/v1/templates/" + id + "/preview", nil, http.StatusForbidden},
		{preferences.RoleDPO, "POST", "/api/v1/templates", validBody("x"), http.StatusForbidden},
		{preferences.RoleViewer, "GET", "/api/v1/templates", nil, http.StatusOK},
		{preferences.RoleViewer, "GET", "/api/v1/templates/" + id, nil, http.StatusOK},
		{preferences.RoleDPO, "GET", "/api/v1/templates/" + id, nil, http.StatusOK},
		{preferences.RoleMarketer, "POST", "/api/v1/templates/" + id + "/preview", nil, http.StatusOK},
		{preferences.RoleMarketer, "POST", "/api/v1/templates", validBody("x"), http.StatusCreated},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %s %s", tc.role, tc.method, tc.path), func(t *testing.T) {
			if r := e.do(t, tc.role, tc.method, tc.path, tc.body); r.status != tc.want {
				t.Errorf("status = %d, want %d (body %s)", r.status, tc.want, r.body)
			}
		})
	}
}

func TestPreview(t *testing.T) {
	e := newEnv(t)
	body := validBody("P")
	body["html"] = "<html><body><p>Hi {{.Subscriber.Name}} from {{.Subscriber.Attributes.city}}</p></body></html>"
	id := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates", body), http.StatusCreated)["id"].(string)
	ana := e.mustSubscriber(t, "Ana <b>Bold</b>", "en")
	marie := e.mustSubscriber(t, "Marie", "fr")

	tests := []struct {
		name        string
		body        any
		wantSubject string
		wantHTML    []string
		notHTML     []string
		wantText    []string
	}{
		{"sample data", nil, "Hello Ana Example",
			[]string{"Hi Ana Example from Lyon", baseURL + "/u/preview", baseURL + "/p/preview", "Example SAS"}, nil,
			[]string{baseURL + "/u/preview", "Unsubscribe"}},
		{"real subscriber, escaped", map[string]any{"subscriber": ana}, "Hello Ana <b>Bold</b>",
			[]string{"Hi Ana &lt;b&gt;Bold&lt;/b&gt; from", baseURL + "/u/preview"}, []string{"<b>Bold"},
			[]string{"Unsubscribe"}},
		{"French footer", map[string]any{"subscriber": marie}, "Hello Marie",
			[]string{"Hi Marie", "Se désabonner", baseURL + "/u/preview"}, nil,
			[]string{"Se désabonner"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// An admin, who may see the person's data (a marketer's preview is masked:
			// TestPreviewMasksForMarketersAndLogsForAdmins).
			got := wantStatus(t, e.do(t, preferences.RoleAdmin, "POST", "/api/v1/templates/"+id+"/preview", tc.body), http.StatusOK)
			if got["subject"] != tc.wantSubject {
				t.Errorf("subject = %q, want %q", got["subject"], tc.wantSubject)
			}
			html, _ := got["html"].(string)
			for _, w := range tc.wantHTML {
				if !strings.Contains(html, w) {
					t.Errorf("html lacks %q:\n%s", w, html)
				}
			}
			for _, w := range tc.notHTML {
				if strings.Contains(html, w) {
					t.Errorf("html has %q:\n%s", w, html)
				}
			}
			text, _ := got["text"].(string)
			for _, w := range tc.wantText {
				if !strings.Contains(text, w) {
					t.Errorf("text lacks %q:\n%s", w, text)
				}
			}
		})
	}

	t.Run("unknown subscriber", func(t *testing.T) {
		errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates/"+id+"/preview",
			map[string]any{"subscriber": "sub_doesnotexist"}), http.StatusNotFound, "not_found")
	})
	t.Run("unknown template", func(t *testing.T) {
		errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates/tpl_nope/preview", nil), http.StatusNotFound, "not_found")
	})
	t.Run("bad JSON", func(t *testing.T) {
		errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates/"+id+"/preview", "{"), http.StatusBadRequest, "bad_json")
	})
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	want := map[string]bool{}
	for i := range 5 {
		id := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates", validBody(fmt.Sprint("T", i))), http.StatusCreated)["id"].(string)
		want[id] = true
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		page := wantStatus(t, e.do(t, preferences.RoleViewer, "GET", "/api/v1/templates?limit=2&cursor="+cursor, nil), http.StatusOK)
		pages++
		items, _ := page["items"].([]any)
		if len(items) > 2 {
			t.Fatalf("page of %d items, want at most 2", len(items))
		}
		for _, it := range items {
			id := it.(map[string]any)["id"].(string)
			if seen[id] {
				t.Errorf("%s seen twice", id)
			}
			seen[id] = true
		}
		next, ok := page["next_cursor"].(string)
		if !ok {
			t.Fatalf("next_cursor = %v, want a string", page["next_cursor"])
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		cursor = next
	}
	if pages != 3 || len(seen) != len(want) {
		t.Errorf("%d pages, %d templates; want 3 pages, %d templates", pages, len(seen), len(want))
	}
	for _, lim := range []string{"0", "1001", "x"} {
		fields := errorFields(t, e.do(t, preferences.RoleViewer, "GET", "/api/v1/templates?limit="+lim, nil), http.StatusUnprocessableEntity, "validation_failed")
		if _, ok := fields["limit"]; !ok {
			t.Errorf("limit=%s: fields = %v, want limit", lim, fields)
		}
	}
	empty := newEnv(t)
	page := wantStatus(t, empty.do(t, preferences.RoleViewer, "GET", "/api/v1/templates", nil), http.StatusOK)
	if items, ok := page["items"].([]any); !ok || len(items) != 0 || page["next_cursor"] != "" {
		t.Errorf("empty list = %v, want {\"items\":[],\"next_cursor\":\"\"}", page)
	}
}

// A marketer previews a real subscriber with the masked address and withheld name
// and attribute values, and nothing is logged; an admin sees them, and the read is
// one unmasked event.
func TestPreviewMasksForMarketersAndLogsForAdmins(t *testing.T) {
	e := newEnv(t)
	body := validBody("P")
	body["subject"] = "Hello {{.Subscriber.Name}}"
	body["html"] = "<p>{{.Subscriber.Email}} {{.Subscriber.Name}} {{.Subscriber.Attributes.city}}</p>"
	body["text"] = "{{.Subscriber.Email}} {{.Subscriber.Name}} {{.Subscriber.Attributes.city}}"
	id := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates", body), http.StatusCreated)["id"].(string)
	sub := e.mustSubscriber(t, "Ana", "en")
	unmasked := func() int {
		evs, _, err := e.prefs.Ledger(context.Background(), preferences.LedgerQuery{Subscriber: sub, Type: preferences.EventUnmasked, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}

	got := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates/"+id+"/preview", map[string]any{"subscriber": sub}), http.StatusOK)
	if text, _ := got["text"].(string); !strings.HasPrefix(text, "e***@example.org ***") || got["subject"] != "Hello ***" {
		t.Errorf("marketer's preview: subject %q, text %q; want the masked address and *** for the name", got["subject"], text)
	}
	if n := unmasked(); n != 0 {
		t.Errorf("%d unmasked events after a marketer's preview, want 0", n)
	}
	got = wantStatus(t, e.do(t, preferences.RoleAdmin, "POST", "/api/v1/templates/"+id+"/preview", map[string]any{"subscriber": sub}), http.StatusOK)
	if got["subject"] != "Hello Ana" {
		t.Errorf("admin's preview: subject %q, want Hello Ana", got["subject"])
	}
	if n := unmasked(); n != 1 {
		t.Errorf("%d unmasked events after an admin's preview, want 1", n)
	}
}

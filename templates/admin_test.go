package templates_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"consentmail/templates"
)

func TestAdminViewsShareTheLayout(t *testing.T) {
	r, err := templates.New(templates.Site{Company: "Acme", Accent: "#aa3300"})
	if err != nil {
		t.Fatal(err)
	}
	feature := fstest.MapFS{
		"things.html": {Data: []byte(`{{template "admin_top" .}}<p>{{t "things.count" (num .Data)}}</p><form method="post">{{template "csrf" $}}</form>{{template "admin_bottom" .}}`)},
		"en.json":     {Data: []byte(`{"things.count": "%s things"}`)},
		"fr.json":     {Data: []byte(`{"things.count": "%s choses"}`)},
	}
	v, err := r.AdminViews(feature)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	p := templates.AdminPage{Lang: "fr", Title: "Choses", Section: "lists", CSRF: "tok<en>",
		User: templates.AdminUser{ID: "u1", Email: "ana@acme.example", Role: "marketer"}, Data: int64(12345)}
	if err := v.Render(&b, "things", p); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{`<html lang="fr">`, "12\u202f345 choses", `name="_csrf" value="tok&lt;en&gt;"`,
		`href="/admin/lists" aria-current="page">Listes`, "marketing", "ana@acme.example"} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q:\n%s", want, html)
		}
	}
	// A marketer is not shown the DPO's tools nor the settings.
	for _, not := range []string{"/admin/dpo", "/admin/settings"} {
		if strings.Contains(html, not) {
			t.Errorf("marketer's navigation links %s", not)
		}
	}
	if css := string(templates.BrandCSS(templates.Site{Accent: "#aa3300"})); !strings.Contains(css, "--accent:#aa3300") {
		t.Errorf("brand.css = %q", css)
	}
	if css := string(templates.BrandCSS(templates.Site{Accent: "red;}body{display:none"})); strings.Contains(css, "display") {
		t.Errorf("brand.css takes anything: %q", css)
	}
}

func TestAdminViewsRefuseADuplicateKey(t *testing.T) {
	r, err := templates.New(templates.Site{})
	if err != nil {
		t.Fatal(err)
	}
	feature := fstest.MapFS{"en.json": {Data: []byte(`{"admin.save": "x"}`)}, "fr.json": {Data: []byte(`{}`)}}
	if _, err := r.AdminViews(feature); err == nil || !strings.Contains(err.Error(), "admin.save") {
		t.Fatalf("duplicate key accepted: %v", err)
	}
}

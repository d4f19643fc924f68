package adminpages_test

import (
	"net/url"
	"strings"
	"testing"

	"consentmail/preferences"
)

// TestRolesAreEnforced: each role reaches what the admin API lets it do, and is
// refused (403) the rest, whatever the page shows.
func TestRolesAreEnforced(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	ana := "/admin/subscribers/" + people[0].id
	newList := url.Values{"id": {"x"}, "name": {"X"}, "purpose": {"p"}, "consent_text": {"yes"}, "retention_days": {"30"}}
	type call struct {
		method, path string
		form         url.Values
	}
	calls := map[string]call{
		"lists":         {"GET", "/admin/lists", nil},
		"list":          {"GET", "/admin/lists/weekly", nil},
		"new list form": {"GET", "/admin/lists/_new", nil},
		"create list":   {"POST", "/admin/lists", newList},
		"edit list":     {"GET", "/admin/lists/weekly/edit", nil},
		"delete list":   {"POST", "/admin/lists/nothing/delete", url.Values{"confirm": {"nothing"}}},
		"subscribers":   {"GET", "/admin/subscribers", nil},
		"person":        {"GET", ana, nil},
		"lookup":        {"POST", "/admin/subscribers/lookup", url.Values{"email": {people[0].email}}},
		"unmask":        {"POST", ana + "/unmask", nil},
		"export":        {"GET", ana + "/export", nil},
		"restrict":      {"POST", ana + "/restrict", nil},
		"unrestrict":    {"POST", ana + "/unrestrict", nil},
		"rectify":       {"POST", ana + "/rectify", url.Values{"name": {"A"}}},
		"erase":         {"POST", ana + "/erase", url.Values{"confirm": {"ERASE"}}},
		"dpo":           {"GET", "/admin/dpo", nil},
		"ledger":        {"GET", "/admin/dpo/ledger", nil},
		"verify":        {"GET", "/admin/dpo/verify", nil},
		"register":      {"GET", "/admin/dpo/register", nil},
		"register json": {"GET", "/admin/dpo/register.json", nil},
		"register md":   {"GET", "/admin/dpo/register.md", nil},
	}
	everyone := []string{"lists", "list", "subscribers", "person"}
	allowed := map[string][]string{
		preferences.RoleViewer:   everyone,
		preferences.RoleMarketer: append([]string{"new list form", "create list", "edit list", "delete list"}, everyone...),
		preferences.RoleDPO: append([]string{"lookup", "unmask", "export", "restrict", "unrestrict", "rectify", "erase",
			"dpo", "ledger", "verify", "register", "register json", "register md"}, everyone...),
	}
	for role, ok := range allowed {
		for name, c := range calls {
			t.Run(role+"/"+name, func(t *testing.T) {
				p := st.do(t, role, "en", c.method, c.path, c.form)
				want := contains(ok, name)
				if !want && p.status != 403 {
					t.Errorf("%s %s as %s: status %d, want 403", c.method, c.path, role, p.status)
				}
				if want && p.status == 403 {
					t.Errorf("%s %s as %s: refused", c.method, c.path, role)
				}
			})
		}
	}
	// The pages show a role only what it may use.
	for role, hidden := range map[string][]string{
		preferences.RoleViewer:   {"/admin/lists/_new", "/admin/lists/weekly/edit", "/delete"},
		preferences.RoleMarketer: {"/unmask", "/erase", "/export", "/restrict", "/rectify", "/admin/subscribers/lookup"},
	} {
		for _, path := range []string{"/admin/lists", "/admin/lists/weekly", "/admin/subscribers", ana} {
			p := st.get(t, role, path)
			for _, h := range hidden {
				if strings.Contains(p.body, h) {
					t.Errorf("%s sees %s on %s", role, h, path)
				}
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestMarketersAndViewersNeverSeePersonalData renders every page a marketer or a
// viewer may open, in both languages, and fails on any seeded address, name or
// attribute value; admins and DPOs see names but the address only masked until
// they unmask it.
func TestMarketersAndViewersNeverSeePersonalData(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	paths := []string{"/admin/lists", "/admin/lists/weekly", "/admin/lists/weekly/edit", "/admin/lists/_new",
		"/admin/subscribers", "/admin/subscribers?list=weekly", "/admin/subscribers?status=confirmed",
		"/admin/subscribers?list=weekly&status=unsubscribed", "/admin/subscribers?status=pending"}
	for _, who := range people {
		paths = append(paths, "/admin/subscribers/"+who.id)
	}
	for _, role := range []string{preferences.RoleMarketer, preferences.RoleViewer} {
		for _, lang := range []string{"en", "fr"} {
			for _, path := range paths {
				p := st.do(t, role, lang, "GET", path, nil)
				if p.status == 403 {
					continue
				}
				if p.status != 200 {
					t.Fatalf("%s %s: status %d", role, path, p.status)
				}
				for _, who := range people {
					for _, secret := range []string{who.email, who.name, who.attr} {
						if strings.Contains(p.body, secret) {
							t.Errorf("%s (%s) sees %q on %s", role, lang, secret, path)
						}
					}
				}
			}
		}
	}
	// What they do see: masked addresses and withheld names.
	st.get(t, preferences.RoleViewer, "/admin/subscribers").want(t, 200, "a***@example.org", "b***@example.org", "<td>"+preferences.Withheld+"</td>")

	// The person's page masks for every role: the address is shown masked, never
	// in full, until an admin or DPO asks; names are for admins and DPOs.
	for _, role := range []string{preferences.RoleAdmin, preferences.RoleDPO} {
		p := st.get(t, role, "/admin/subscribers/"+people[0].id)
		p.want(t, 200, "a***@example.org", people[0].name, people[0].attr)
		p.lacks(t, people[0].email)
		st.get(t, role, "/admin/subscribers").lacks(t, people[0].email, people[1].email)
	}
	if got := st.events(t, "", preferences.EventUnmasked); len(got) != 0 {
		t.Errorf("reading pages recorded %d unmasked events, want none", len(got))
	}
}

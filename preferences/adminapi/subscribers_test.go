package adminapi_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

// subscribersAPI is the admin API with n subscribers confirmed on "news".
func subscribersAPI(t *testing.T, n int) (*adminAPI, []string) {
	t.Helper()
	a := newAdminAPI(t)
	preftest.CreateList(t, a.s, "news")
	var ids []string
	for i := range n {
		ids = append(ids, preftest.Subscribed(t, a.s, fmt.Sprintf("p%02d@example.org", i), "news"))
	}
	return a, ids
}

func TestSubscribersMaskedAndUnmaskedWithALog(t *testing.T) {
	a, ids := subscribersAPI(t, 3)
	for _, role := range []string{preferences.RoleMarketer, preferences.RoleViewer, preferences.RoleDPO} {
		page := a.as(t, role, "GET", "/api/v1/subscribers?list=news", nil).json(t)
		items, _ := page["items"].([]any)
		if len(items) != 3 {
			t.Fatalf("%s: %d subscribers, want 3", role, len(items))
		}
		for _, it := range items {
			if e := it.(map[string]any)["email"].(string); !strings.Contains(e, "***@example.org") {
				t.Errorf("%s sees %q, want it masked", role, e)
			}
		}
	}
	for _, role := range []string{preferences.RoleMarketer, preferences.RoleViewer} {
		wantError(t, a.as(t, role, "GET", "/api/v1/subscribers?unmask=true", nil), 403, "forbidden")
		wantError(t, a.as(t, role, "GET", "/api/v1/subscribers/lookup?email=p00@example.org", nil), 403, "forbidden")
	}
	one := a.as(t, preferences.RoleDPO, "GET", "/api/v1/subscribers/"+ids[1]+"?unmask=true", nil).json(t)
	if one["email"] != "p01@example.org" {
		t.Fatalf("unmasked read: %v", one)
	}
	evs := preftest.AllEvents(t, a.s, preferences.LedgerQuery{Type: preferences.EventUnmasked})
	if len(evs) != 1 || evs[0].Subscriber != ids[1] || !strings.Contains(evs[0].Actor, "dpo key") {
		t.Fatalf("unmasked events %+v, want one naming the DPO's key", evs)
	}
	found := a.as(t, preferences.RoleAdmin, "GET", "/api/v1/subscribers/lookup?email=P02@example.org", nil).json(t)
	if found["id"] != ids[2] {
		t.Errorf("lookup: %v", found)
	}
	if n := len(preftest.AllEvents(t, a.s, preferences.LedgerQuery{Type: preferences.EventUnmasked})); n != 2 {
		t.Errorf("%d unmasked events after a lookup, want 2", n)
	}
	wantError(t, a.as(t, preferences.RoleDPO, "GET", "/api/v1/subscribers/lookup?email=nobody@example.org", nil), 404, "not_found")
}

func TestSubscribersPaginationAndFilters(t *testing.T) {
	a, ids := subscribersAPI(t, 5)
	restricted := ids[3]
	if err := a.s.Restrict(t.Context(), preferences.StatusChange{Subscriber: restricted, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	cursor := ""
	for range 10 {
		page := a.as(t, preferences.RoleViewer, "GET", "/api/v1/subscribers?limit=2&cursor="+cursor, nil).json(t)
		for _, it := range page["items"].([]any) {
			seen = append(seen, it.(map[string]any)["id"].(string))
		}
		if cursor = page["next_cursor"].(string); cursor == "" {
			break
		}
	}
	slices.Sort(ids) // ids made in the same millisecond sort by their random part
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Errorf("pages gave %v, want %v in order", seen, ids)
	}
	page := a.as(t, preferences.RoleViewer, "GET", "/api/v1/subscribers?status=restricted", nil).json(t)
	if items := page["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != restricted {
		t.Errorf("status=restricted: %v", page)
	}
	page = a.as(t, preferences.RoleViewer, "GET", "/api/v1/subscribers?list=news&status=confirmed&limit=1000", nil).json(t)
	if items := page["items"].([]any); len(items) != 5 {
		t.Errorf("list=news&status=confirmed: %d items, want 5", len(items))
	}
	wantError(t, a.as(t, preferences.RoleViewer, "GET", "/api/v1/subscribers?status=bogus", nil), 422, "validation_failed")
}

func TestRestrictExportEraseRightsAndRoles(t *testing.T) {
	a, ids := subscribersAPI(t, 2)
	id := ids[0]
	for _, role := range []string{preferences.RoleMarketer, preferences.RoleViewer} {
		for _, r := range []struct{ method, path string }{{"POST", "/restrict"}, {"POST", "/unrestrict"}, {"GET", "/export"}, {"DELETE", ""}} {
			wantError(t, a.as(t, role, r.method, "/api/v1/subscribers/"+id+r.path, nil), 403, "forbidden")
		}
	}
	if got := a.as(t, preferences.RoleDPO, "POST", "/api/v1/subscribers/"+id+"/restrict", nil).json(t); got["status"] != "restricted" {
		t.Fatalf("restrict: %v", got)
	}
	if got := a.as(t, preferences.RoleDPO, "POST", "/api/v1/subscribers/"+id+"/restrict", nil).json(t); got["status"] != "restricted" {
		t.Fatalf("restricting again: %v", got) // harmless, recorded once
	}
	if got := a.as(t, preferences.RoleDPO, "POST", "/api/v1/subscribers/"+id+"/unrestrict", nil).json(t); got["status"] != "active" {
		t.Fatalf("unrestrict: %v", got)
	}
	for _, typ := range []string{preferences.EventRestricted, preferences.EventUnrestricted} {
		if evs := preftest.AllEvents(t, a.s, preferences.LedgerQuery{Subscriber: id, Type: typ}); len(evs) != 1 || !strings.Contains(evs[0].Actor, "dpo key") {
			t.Errorf("%s events: %+v", typ, evs)
		}
	}

	r := a.as(t, preferences.RoleDPO, "GET", "/api/v1/subscribers/"+id+"/export", nil)
	doc := r.json(t)
	if !strings.Contains(r.header.Get("Content-Disposition"), "attachment") || doc["subscriber"].(map[string]any)["email"] != "p00@example.org" {
		t.Fatalf("export: %v", doc)
	}
	for _, k := range []string{"consent_history", "campaigns", "bounces", "processing"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("export lacks %q", k)
		}
	}
	z := a.as(t, preferences.RoleDPO, "GET", "/api/v1/subscribers/"+id+"/export?format=csv", nil)
	zr, err := zip.NewReader(bytes.NewReader(z.body), int64(len(z.body)))
	if err != nil || z.header.Get("Content-Type") != "application/zip" {
		t.Fatalf("csv export: %v, %v", err, z.header)
	}
	files := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		files[f.Name] = string(b)
	}
	for _, name := range []string{"profile.csv", "subscriptions.csv", "consent_history.csv", "campaigns.csv", "bounces.csv", "processing.csv"} {
		if _, ok := files[name]; !ok {
			t.Errorf("the zip lacks %s (has %v)", name, len(files))
		}
	}
	if !strings.Contains(files["profile.csv"], "p00@example.org") || !strings.Contains(files["consent_history.csv"], "confirmed") {
		t.Errorf("csv export content:\n%s\n%s", files["profile.csv"], files["consent_history.csv"])
	}

	var record, wrapped []byte
	if err := a.s.DB.View(func(tx *bbolt.Tx) error {
		record = bytes.Clone(tx.Bucket([]byte("prefs.subscribers")).Get([]byte(id)))
		wrapped = bytes.Clone(tx.Bucket([]byte("prefs.data_keys")).Get([]byte(id)))
		return nil
	}); err != nil || len(wrapped) == 0 {
		t.Fatalf("data key of %s: %v", id, err)
	}
	rc := a.as(t, preferences.RoleDPO, "DELETE", "/api/v1/subscribers/"+id, nil).json(t)
	if rc["subscriber"] != id || rc["ledger_seq"] == nil || rc["erased_at"] == nil {
		t.Fatalf("erasure receipt: %v", rc)
	}
	wantError(t, a.as(t, preferences.RoleDPO, "DELETE", "/api/v1/subscribers/"+id, nil), 409, "conflict")
	wantError(t, a.as(t, preferences.RoleDPO, "GET", "/api/v1/subscribers/"+id+"/export", nil), 404, "not_found")
	preftest.Verify(t, a.s)

	// Freed pages of the data file may keep the record and the wrapped data key as they
	// were: put back, in a store opened afresh, they do not open, even with the root
	// secret (the erasure replaced the key group's KEK; preferences
	// TestErasureDestroysTheKeyGroupKEK looks at the key file).
	a.s.RawUpdate(t, func(tx *bbolt.Tx) error {
		if err := tx.Bucket([]byte("prefs.subscribers")).Put([]byte(id), record); err != nil {
			return err
		}
		return tx.Bucket([]byte("prefs.data_keys")).Put([]byte(id), wrapped)
	})
	if sub, err := a.s.Subscriber(t.Context(), id); !errors.Is(err, preferences.ErrKeyDestroyed) {
		t.Errorf("the erased subscriber's kept record and data key open: %+v, %v; want ErrKeyDestroyed", sub, err)
	}
	a.s.CloseDB(t)
	raw, err := os.ReadFile(a.s.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, probe := range []string{"p00@example.org", "Name of p00"} {
		if bytes.Contains(raw, []byte(probe)) {
			t.Errorf("%q is in the data file after erasure", probe)
		}
	}
}

func TestRegisterFromTheLists(t *testing.T) {
	a, _ := subscribersAPI(t, 1)
	wantError(t, a.as(t, preferences.RoleMarketer, "GET", "/api/v1/register", nil), 403, "forbidden")
	r := a.as(t, preferences.RoleDPO, "GET", "/api/v1/register", nil).json(t)
	acts, _ := r["activities"].([]any)
	if len(acts) != 1 || acts[0].(map[string]any)["legal_basis"] != preferences.LegalBasisConsent ||
		acts[0].(map[string]any)["retention_days"] != float64(preferences.DefaultRetentionDays) {
		t.Fatalf("register: %v", r)
	}
	md := a.as(t, preferences.RoleDPO, "GET", "/api/v1/register?format=md", nil)
	if !strings.HasPrefix(md.header.Get("Content-Type"), "text/markdown") || !strings.Contains(string(md.body), "## List news (`news`)") {
		t.Errorf("markdown register:\n%s", md.body)
	}
}

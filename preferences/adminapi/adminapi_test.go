package adminapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/adminapi"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/internal/preftest"
)

// adminAPI is the admin API over a test store, with one key per role.
type adminAPI struct {
	s    *preftest.Store
	app  *fiber.App
	keys map[string]string // role -> key
}

func newAdminAPI(t *testing.T) *adminAPI {
	t.Helper()
	s := preftest.NewStore(t)
	app := preftest.NewApp(t)
	guard := apiauth.New(preferences.NewAuthenticator(s.Store), s.Clock.Now)
	adminapi.New(s.Store, guard, preferences.NewEraser(s.Store, nil, nil), nil, preferences.RegisterSite{Company: "Acme"}, refuseUnkeyed).Routes(app)
	a := &adminAPI{s: s, app: app, keys: map[string]string{}}
	for _, role := range []string{preferences.RoleAdmin, preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleViewer} {
		_, key, err := s.CreateAPIKey(context.Background(), role, role+" key")
		if err != nil {
			t.Fatal(err)
		}
		a.keys[role] = key
	}
	return a
}

// refuseUnkeyed is the from check of a sender whose DKIM keys leave unkeyed.test out.
func refuseUnkeyed(from string) error {
	if strings.HasSuffix(strings.TrimSuffix(from, ">"), "@unkeyed.test") {
		return errors.New("no DKIM key for unkeyed.test: DMARC alignment would fail")
	}
	return nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r response) json(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		tb.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// do sends a request with "Authorization: <auth>" (none if auth is empty). body is
// sent as JSON: a string as it is, anything else marshalled.
func (a *adminAPI) do(tb testing.TB, method, path, auth string, body any) response {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		raw, ok := body.(string)
		if !ok {
			b, err := json.Marshal(body)
			if err != nil {
				tb.Fatal(err)
			}
			raw = string(b)
		}
		rd = strings.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, b := preftest.Do(tb, a.app, req)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// as sends a request with the key of role.
func (a *adminAPI) as(tb testing.TB, role, method, path string, body any) response {
	tb.Helper()
	return a.do(tb, method, path, "Bearer "+a.keys[role], body)
}

// wantError checks the contract's error shape and returns its fields.
func wantError(tb testing.TB, r response, status int, code string) map[string]any {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	m := r.json(tb)
	if keys := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, []string{"error"}) {
		tb.Errorf("top-level keys = %v, want [error] (body %s)", keys, r.body)
	}
	e, ok := m["error"].(map[string]any)
	if !ok {
		tb.Fatalf("error = %v, want an object", m["error"])
	}
	if e["code"] != code {
		tb.Errorf("error.code = %v, want %q", e["code"], code)
	}
	if msg, _ := e["message"].(string); msg == "" {
		tb.Errorf("error.message = %v, want human text", e["message"])
	}
	fields, _ := e["fields"].(map[string]any)
	return fields
}

var validList = map[string]any{"id": "news", "name": "News", "purpose": "Monthly news about the product",
	"consent_text": "Yes, send me the monthly news", "privacy_url": "https://example.org/privacy", "public": true}

func withList(changes map[string]any, drop ...string) map[string]any {
	m := maps.Clone(validList)
	maps.Copy(m, changes)
	for _, k := range drop {
		delete(m, k)
	}
	return m
}

func TestAdminAPIAuthorization(t *testing.T) {
	a := newAdminAPI(t)
	preftest.CreateList(t, a.s, "existing")
	const (
		none = ""
		bad  = "Bearer cmk_thisKeyDoesNotExist0123456789"
	)
	type req struct{ method, path string }
	var (
		createList = req{"POST", "/api/v1/lists"}
		getLists   = req{"GET", "/api/v1/lists"}
		getList    = req{"GET", "/api/v1/lists/existing"}
		patchList  = req{"PATCH", "/api/v1/lists/existing"}
		deleteList = req{"DELETE", "/api/v1/lists/existing"}
		ledger     = req{"GET", "/api/v1/ledger"}
		verify     = req{"GET", "/api/v1/ledger/verify"}
		createKey  = req{"POST", "/api/v1/apikeys"}
		getKeys    = req{"GET", "/api/v1/apikeys"}
		deleteKey  = req{"DELETE", "/api/v1/apikeys/key_nonexistent"}
	)
	tests := []struct {
		name string
		req  req
		role string // a role, or else the raw Authorization header
		want int
	}{
		{"no authorization", getLists, none, 401},
		{"no authorization on ledger", ledger, none, 401},
		{"unknown key", getLists, bad, 401},
		{"basic scheme", getLists, "Basic YWRtaW46YWRtaW4=", 401},
		{"empty bearer", getLists, "Bearer ", 401},
		{"bearer without space", getLists, "Bearer", 401},

		{"viewer lists", getLists, preferences.RoleViewer, 200},
		{"viewer one list", getList, preferences.RoleViewer, 200},
		{"viewer creates list", createList, preferences.RoleViewer, 403},
		{"viewer patches list", patchList, preferences.RoleViewer, 403},
		{"viewer deletes list", deleteList, preferences.RoleViewer, 403},
		{"viewer ledger", ledger, preferences.RoleViewer, 403},
		{"viewer verify", verify, preferences.RoleViewer, 403},
		{"viewer keys", getKeys, preferences.RoleViewer, 403},

		{"dpo lists", getLists, preferences.RoleDPO, 200},
		{"dpo ledger", ledger, preferences.RoleDPO, 200},
		{"dpo verify", verify, preferences.RoleDPO, 200},
		{"dpo creates list", createList, preferences.RoleDPO, 403},
		{"dpo patches list", patchList, preferences.RoleDPO, 403},
		{"dpo deletes list", deleteList, preferences.RoleDPO, 403},
		{"dpo creates key", createKey, preferences.RoleDPO, 403},
		{"dpo keys", getKeys, preferences.RoleDPO, 403},

		{"marketer lists", getLists, preferences.RoleMarketer, 200},
		{"marketer ledger", ledger, preferences.RoleMarketer, 403},
		{"marketer verify", verify, preferences.RoleMarketer, 403},
		{"marketer creates key", createKey, preferences.RoleMarketer, 403},
		{"marketer keys", getKeys, preferences.RoleMarketer, 403},
		{"marketer deletes key", deleteKey, preferences.RoleMarketer, 403},

		{"admin lists", getLists, preferences.RoleAdmin, 200},
		{"admin ledger", ledger, preferences.RoleAdmin, 200},
		{"admin verify", verify, preferences.RoleAdmin, 200},
		{"admin keys", getKeys, preferences.RoleAdmin, 200},
		{"admin deletes unknown key", deleteKey, preferences.RoleAdmin, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			auth := tc.role
			if key, ok := a.keys[tc.role]; ok {
				auth = "Bearer " + key
			}
			// Write requests carry an invalid body: authorization comes first.
			var body any
			if tc.req.method == "POST" || tc.req.method == "PATCH" {
				body = map[string]any{"retention_days": -5}
			}
			r := a.do(t, tc.req.method, tc.req.path, auth, body)
			switch tc.want {
			case 401:
				wantError(t, r, 401, "unauthorized")
				if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", h)
				}
			case 403:
				wantError(t, r, 403, "forbidden")
			case 404:
				wantError(t, r, 404, "not_found")
			default:
				if r.status != tc.want {
					t.Errorf("status = %d, want %d (body %s)", r.status, tc.want, r.body)
				}
			}
		})
	}
}

func TestAdminAPIListsCRUD(t *testing.T) {
	a := newAdminAPI(t)
	const m = preferences.RoleMarketer
	r := a.as(t, m, "POST", "/api/v1/lists", validList)
	if r.status != 201 {
		t.Fatalf("create: status = %d, want 201 (body %s)", r.status, r.body)
	}
	var created preferences.List
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	if created.ID != "news" || created.Name != "News" || created.RetentionDays != preferences.DefaultRetentionDays ||
		!created.Public || created.ConsentVersion == "" {
		t.Errorf("created = %+v, want news with default retention, public, a consent version", created)
	}
	wantError(t, a.as(t, m, "POST", "/api/v1/lists", withList(map[string]any{"name": "Again"})), 409, "conflict")

	r = a.as(t, preferences.RoleViewer, "GET", "/api/v1/lists/news", nil)
	if r.status != 200 {
		t.Fatalf("get: status = %d, want 200", r.status)
	}
	if got := r.json(t); got["name"] != "News" || got["purpose"] != validList["purpose"] {
		t.Errorf("get = %v, want the created list", got)
	}

	r = a.as(t, m, "PATCH", "/api/v1/lists/news", map[string]any{"consent_text": "New wording", "retention_days": 365})
	if r.status != 200 {
		t.Fatalf("patch: status = %d, want 200 (body %s)", r.status, r.body)
	}
	var patched preferences.List
	if err := json.Unmarshal(r.body, &patched); err != nil {
		t.Fatal(err)
	}
	if patched.ConsentText != "New wording" || patched.RetentionDays != 365 || patched.Name != "News" ||
		patched.PrivacyURL != validList["privacy_url"] || !patched.Public {
		t.Errorf("patched = %+v, want new text and retention, other fields kept", patched)
	}
	if patched.ConsentVersion == created.ConsentVersion {
		t.Errorf("consent version unchanged (%s) after a text change", patched.ConsentVersion)
	}
	if ct, err := a.s.ConsentTextVersion(context.Background(), created.ConsentVersion); err != nil || ct.Text != validList["consent_text"] {
		t.Errorf("old consent text = %+v, %v; want still readable", ct, err)
	}
	wantError(t, a.as(t, m, "PATCH", "/api/v1/lists/ghost", map[string]any{"name": "x"}), 404, "not_found")

	if r = a.as(t, m, "DELETE", "/api/v1/lists/news", nil); r.status != 204 {
		t.Errorf("delete: status = %d, want 204 (body %s)", r.status, r.body)
	}
	wantError(t, a.as(t, m, "GET", "/api/v1/lists/news", nil), 404, "not_found")
	wantError(t, a.as(t, m, "DELETE", "/api/v1/lists/news", nil), 404, "not_found")
}

func TestAdminAPIListValidation(t *testing.T) {
	a := newAdminAPI(t)
	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"upper-case slug", withList(map[string]any{"id": "News"}), "id"},
		{"underscore slug", withList(map[string]any{"id": "a_b"}), "id"},
		{"slash in slug", withList(map[string]any{"id": "a/b"}), "id"},
		{"65-char slug", withList(map[string]any{"id": strings.Repeat("a", 65)}), "id"},
		{"empty slug", withList(map[string]any{"id": ""}), "id"},
		{"missing slug", withList(nil, "id"), "id"},
		{"missing name", withList(nil, "name"), "name"},
		{"blank name", withList(map[string]any{"name": "   "}), "name"},
		{"name of two lines", withList(map[string]any{"name": "News\r\nBcc: x@example.org"}), "name"},
		{"missing purpose", withList(nil, "purpose"), "purpose"},
		{"missing consent_text", withList(nil, "consent_text"), "consent_text"},
		{"ftp privacy_url", withList(map[string]any{"privacy_url": "ftp://example.org/privacy"}), "privacy_url"},
		{"javascript privacy_url", withList(map[string]any{"privacy_url": "javascript:alert(1)"}), "privacy_url"},
		{"relative privacy_url", withList(map[string]any{"privacy_url": "/privacy"}), "privacy_url"},
		{"hostless privacy_url", withList(map[string]any{"privacy_url": "https://"}), "privacy_url"},
		{"retention 0", withList(map[string]any{"retention_days": 0}), "retention_days"},
		{"retention negative", withList(map[string]any{"retention_days": -1}), "retention_days"},
		{"retention 36501", withList(map[string]any{"retention_days": 36501}), "retention_days"},
		{"from of two lines", withList(map[string]any{"from": "a@example.org\nBcc: b@example.org"}), "from"},
		{"from without a DKIM key", withList(map[string]any{"from": "News <news@unkeyed.test>"}), "from"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fields := wantError(t, a.as(t, preferences.RoleMarketer, "POST", "/api/v1/lists", tc.body), 422, "validation_failed")
			if msg, _ := fields[tc.field].(string); msg == "" {
				t.Errorf("fields = %v, want a message for %q", fields, tc.field)
			}
		})
	}
	t.Run("boundaries accepted", func(t *testing.T) {
		for i, body := range []map[string]any{
			withList(map[string]any{"id": strings.Repeat("a", 64), "retention_days": 36500}),
			withList(map[string]any{"id": "r1", "retention_days": 1, "privacy_url": ""}),
			withList(map[string]any{"id": "0-9", "privacy_url": "http://example.org", "from": "News <news@keyed.test>"}),
		} {
			if r := a.as(t, preferences.RoleMarketer, "POST", "/api/v1/lists", body); r.status != 201 {
				t.Errorf("body %d: status = %d, want 201 (body %s)", i, r.status, r.body)
			}
		}
	})
	t.Run("nothing invalid was stored", func(t *testing.T) {
		page, _, err := a.s.Lists(context.Background(), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 3 {
			t.Errorf("stored %d lists, want the 3 valid ones", len(page))
		}
	})
	t.Run("patch", func(t *testing.T) {
		preftest.CreateList(t, a.s, "patchme")
		before, _ := a.s.List(context.Background(), "patchme")
		for _, tc := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"retention_days": 0}, "retention_days"},
			{map[string]any{"name": ""}, "name"},
			{map[string]any{"consent_text": " "}, "consent_text"},
			{map[string]any{"privacy_url": "mailto:dpo@example.org"}, "privacy_url"},
			{map[string]any{"id": "other"}, "id"},
			{map[string]any{"from": "news@unkeyed.test"}, "from"},
		} {
			fields := wantError(t, a.as(t, preferences.RoleMarketer, "PATCH", "/api/v1/lists/patchme", tc.body), 422, "validation_failed")
			if _, ok := fields[tc.field]; !ok {
				t.Errorf("PATCH %v: fields = %v, want %q", tc.body, fields, tc.field)
			}
		}
		if after, _ := a.s.List(context.Background(), "patchme"); !reflect.DeepEqual(after, before) {
			t.Errorf("list after rejected patches = %+v, want unchanged %+v", after, before)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/api/v1/lists", strings.NewReader("id=news"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+a.keys[preferences.RoleMarketer])
		resp, err := a.app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantError(t, response{status: resp.StatusCode, body: body}, 415, "unsupported_media_type")
		wantError(t, a.as(t, preferences.RoleMarketer, "POST", "/api/v1/lists", `{"id": "news",`), 400, "bad_json")
		wantError(t, a.as(t, preferences.RoleMarketer, "POST", "/api/v1/lists", `{"retention_days": "many"}`), 400, "bad_json")
	})
}

func TestAdminAPIKeys(t *testing.T) {
	a := newAdminAPI(t)
	r := a.as(t, preferences.RoleAdmin, "POST", "/api/v1/apikeys", map[string]any{"role": "viewer", "name": "dashboard"})
	if r.status != 201 {
		t.Fatalf("create: status = %d, want 201 (body %s)", r.status, r.body)
	}
	created := r.json(t)
	key, _ := created["key"].(string)
	id, _ := created["id"].(string)
	if key == "" || id == "" || created["role"] != "viewer" || created["name"] != "dashboard" {
		t.Fatalf("create = %v, want id, key, role viewer, name dashboard", created)
	}
	if r := a.do(t, "GET", "/api/v1/lists", "Bearer "+key, nil); r.status != 200 {
		t.Errorf("new viewer key: GET lists status = %d, want 200", r.status)
	}
	wantError(t, a.do(t, "POST", "/api/v1/lists", "Bearer "+key, validList), 403, "forbidden")

	r = a.as(t, preferences.RoleAdmin, "GET", "/api/v1/apikeys", nil)
	if r.status != 200 {
		t.Fatalf("list: status = %d, want 200", r.status)
	}
	hash := sha256.Sum256([]byte(key))
	for _, secret := range []string{key, strings.TrimPrefix(key, "cmk_"), hex.EncodeToString(hash[:])} {
		if bytes.Contains(r.body, []byte(secret)) {
			t.Errorf("GET /api/v1/apikeys shows %q: %s", secret, r.body)
		}
	}
	var listed struct {
		Items      []map[string]any `json:"items"`
		NextCursor *string          `json:"next_cursor"`
	}
	if err := json.Unmarshal(r.body, &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.Items) != 5 || listed.NextCursor == nil {
		t.Errorf("list = %s, want 5 items and next_cursor", r.body)
	}
	for _, item := range listed.Items {
		for _, k := range []string{"key", "hash"} {
			if _, ok := item[k]; ok {
				t.Errorf("item %v has %q", item, k)
			}
		}
		if item["id"] == id && (item["role"] != "viewer" || item["name"] != "dashboard" || item["created_at"] == nil) {
			t.Errorf("item = %v, want role, name and created_at", item)
		}
	}

	if r := a.as(t, preferences.RoleAdmin, "DELETE", "/api/v1/apikeys/"+id, nil); r.status != 204 {
		t.Errorf("delete: status = %d, want 204 (body %s)", r.status, r.body)
	}
	wantError(t, a.do(t, "GET", "/api/v1/lists", "Bearer "+key, nil), 401, "unauthorized")
	wantError(t, a.as(t, preferences.RoleAdmin, "DELETE", "/api/v1/apikeys/"+id, nil), 404, "not_found")

	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"role": "root", "name": "x"}, "role"},
		{map[string]any{"name": "x"}, "role"},
		{map[string]any{"role": "viewer", "name": strings.Repeat("n", 101)}, "name"},
		{map[string]any{"role": "viewer", "name": "two\nlines"}, "name"},
	} {
		fields := wantError(t, a.as(t, preferences.RoleAdmin, "POST", "/api/v1/apikeys", tc.body), 422, "validation_failed")
		if _, ok := fields[tc.field]; !ok {
			t.Errorf("POST %v: fields = %v, want %q", tc.body, fields, tc.field)
		}
	}
}

func TestAdminAPILedger(t *testing.T) {
	a := newAdminAPI(t)
	preftest.CreateList(t, a.s, "news")
	var subs []string
	for i := range 3 {
		in := preftest.SignupInput(fmt.Sprintf("l%d@example.org", i), "news")
		in.IP, in.UserAgent = fmt.Sprintf("192.0.2.%d", 10+i), fmt.Sprintf("agent-%d", i)
		req := preftest.Signup(t, a.s, in)
		preftest.Confirm(t, a.s, req)
		subs = append(subs, req.Subscriber)
	}
	const dpo = preferences.RoleDPO

	t.Run("verify", func(t *testing.T) {
		r := a.as(t, dpo, "GET", "/api/v1/ledger/verify", nil)
		if r.status != 200 {
			t.Fatalf("status = %d, want 200", r.status)
		}
		got := r.json(t)
		want := preftest.Verify(t, a.s)
		if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, []string{"events", "head", "ok"}) {
			t.Errorf("keys = %v, want [events head ok] (body %s)", keys, r.body)
		}
		if got["ok"] != true || got["events"] != float64(6) || got["head"] != want.Head || len(want.Head) != 64 {
			t.Errorf("verify = %v, want ok true, 6 events, head %s", got, want.Head)
		}
	})

	t.Run("pages", func(t *testing.T) {
		var seqs []float64
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 6 {
				t.Fatalf("pagination does not end")
			}
			r := a.as(t, dpo, "GET", "/api/v1/ledger?limit=4&cursor="+cursor, nil)
			if r.status != 200 {
				t.Fatalf("status = %d, want 200 (body %s)", r.status, r.body)
			}
			m := r.json(t)
			if keys := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, []string{"items", "next_cursor"}) {
				t.Fatalf("keys = %v, want [items next_cursor]", keys)
			}
			items, _ := m["items"].([]any)
			for _, it := range items {
				e := it.(map[string]any)
				for _, f := range []string{"seq", "at", "type", "subscriber", "lists", "ip", "user_agent", "prev_hash", "hash"} {
					if _, ok := e[f]; !ok {
						t.Errorf("event %v lacks %q", e, f)
					}
				}
				seqs = append(seqs, e["seq"].(float64))
			}
			next, ok := m["next_cursor"].(string)
			if !ok {
				t.Fatalf("next_cursor = %v, want a string", m["next_cursor"])
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if want := []float64{1, 2, 3, 4, 5, 6}; !slices.Equal(seqs, want) {
			t.Errorf("seqs = %v, want %v", seqs, want)
		}
	})

	t.Run("filters", func(t *testing.T) {
		r := a.as(t, dpo, "GET", "/api/v1/ledger?subscriber="+subs[1]+"&type=signup", nil)
		if r.status != 200 {
			t.Fatalf("status = %d, want 200", r.status)
		}
		var got struct {
			Items []preferences.Event `json:"items"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Items) != 1 || got.Items[0].Subscriber != subs[1] || got.Items[0].Type != "signup" ||
			got.Items[0].IP != "192.0.2.11" || got.Items[0].UserAgent != "agent-1" {
			t.Errorf("items = %+v, want the one signup of %s with its IP and user agent", got.Items, subs[1])
		}
		r = a.as(t, dpo, "GET", "/api/v1/ledger?type=nothing", nil)
		if m := r.json(t); r.status != 200 || fmt.Sprint(m["items"]) != "[]" || m["next_cursor"] != "" {
			t.Errorf("empty result = %d %s, want 200 {\"items\":[],\"next_cursor\":\"\"}", r.status, r.body)
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		for _, tc := range []struct{ query, field string }{
			{"limit=1001", "limit"}, {"limit=0", "limit"}, {"limit=-1", "limit"}, {"limit=ten", "limit"},
			{"cursor=abc", "cursor"}, {"cursor=-1", "cursor"},
		} {
			fields := wantError(t, a.as(t, dpo, "GET", "/api/v1/ledger?"+tc.query, nil), 422, "validation_failed")
			if _, ok := fields[tc.field]; !ok {
				t.Errorf("%s: fields = %v, want %q", tc.query, fields, tc.field)
			}
		}
		if r := a.as(t, dpo, "GET", "/api/v1/ledger?limit=1000", nil); r.status != 200 {
			t.Errorf("limit=1000: status = %d, want 200", r.status)
		}
	})

	t.Run("verify reports tampering", func(t *testing.T) {
		err := a.s.DB.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte(preftest.LedgerBucket))
			v := bytes.Clone(b.Get(preftest.SeqKey(3)))
			v[70] ^= 0x01
			return b.Put(preftest.SeqKey(3), v)
		})
		if err != nil {
			t.Fatal(err)
		}
		r := a.as(t, dpo, "GET", "/api/v1/ledger/verify", nil)
		got := r.json(t)
		if r.status != 200 || got["ok"] != false || got["first_bad_seq"] != float64(3) {
			t.Errorf("verify = %d %s, want 200 with ok false, first_bad_seq 3", r.status, r.body)
		}
	})
}

func TestAdminAPIListsPagination(t *testing.T) {
	a := newAdminAPI(t)
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("l%d", i)
		preftest.CreateList(t, a.s, id)
		want = append(want, id)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("pagination does not end")
		}
		r := a.as(t, preferences.RoleViewer, "GET", "/api/v1/lists?limit=2&cursor="+cursor, nil)
		if r.status != 200 {
			t.Fatalf("status = %d, want 200", r.status)
		}
		var page struct {
			Items      []preferences.List `json:"items"`
			NextCursor *string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		if page.NextCursor == nil {
			t.Fatalf("body %s lacks next_cursor", r.body)
		}
		if len(page.Items) > 2 {
			t.Errorf("page of %d, want at most 2", len(page.Items))
		}
		for _, l := range page.Items {
			got = append(got, l.ID)
		}
		if *page.NextCursor == "" {
			break
		}
		cursor = *page.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	for _, q := range []string{"limit=1001", "limit=0", "limit=x"} {
		fields := wantError(t, a.as(t, preferences.RoleViewer, "GET", "/api/v1/lists?"+q, nil), 422, "validation_failed")
		if _, ok := fields["limit"]; !ok {
			t.Errorf("%s: fields = %v, want limit", q, fields)
		}
	}
	empty := newAdminAPI(t)
	if r := empty.as(t, preferences.RoleViewer, "GET", "/api/v1/lists", nil); string(r.body) != `{"items":[],"next_cursor":""}` {
		t.Errorf("no lists = %s, want {\"items\":[],\"next_cursor\":\"\"}", r.body)
	}
}

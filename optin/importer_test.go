package optin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"consentmail/optin"
	"consentmail/preferences"
)

func TestImportCSV(t *testing.T) {
	e := newEnv(t)
	csv := "email,name,locale,consented_at,consent_source,consent_ip,city\n" +
		"ana@example.org,Ana,fr,2024-05-01T10:00:00Z,paper form,203.0.113.9,Lyon\n" + // 2: proof
		"bob@example.org,Bob,,,,,\n" + // 3: no proof: pending
		"not-an-address,X,,,,,\n" + // 4
		"carl@example.org,Carl,,2024-05-01,,,\n" + // 5: half a proof
		"dora@example.org,Dora,,yesterday,web,,\n" + // 6
		"eve@example.org,Eve,,2024-05-01,web,not-an-ip,\n" + // 7
		"\"fay@example.org,Fay\n" // 8: broken quoting
	res, err := optin.Import(t.Context(), e.store, newsletter.ID, "test", strings.NewReader(csv), optin.OptinEnqueuer(e.queue))
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 1 || res.Pending != 1 {
		t.Errorf("imported %d, pending %d; want 1 and 1", res.Imported, res.Pending)
	}
	lines := map[int]string{}
	for _, r := range res.Rejected {
		lines[r.Line] = r.Error
	}
	for _, l := range []int{4, 5, 6, 7, 8} {
		if lines[l] == "" {
			t.Errorf("line %d not rejected (rejected: %v)", l, res.Rejected)
		}
	}
	if len(res.Rejected) != 5 {
		t.Errorf("%d rejected, want 5: %v", len(res.Rejected), res.Rejected)
	}
	imported := e.events(t, preferences.EventImported)
	if len(imported) != 2 {
		t.Fatalf("%d imported events, want 2", len(imported))
	}
	lookup := func(addr string) string {
		id, ok := e.store.LookupEmail(t.Context(), addr)
		if !ok {
			t.Fatalf("%s was not imported", addr)
		}
		return id
	}
	ana := lookup("ana@example.org")
	sub, err := e.store.Subscriber(t.Context(), ana)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Subscriptions[0].Status != preferences.SubConfirmed || sub.Attributes["city"] != "Lyon" || sub.Locale != "fr" {
		t.Errorf("ana: %+v", sub)
	}
	if got := e.subStatus(t, lookup("bob@example.org"), newsletter.ID); got != preferences.SubPending {
		t.Errorf("bob is %s, want pending", got)
	}
	if got := e.ready(t); got != 1 {
		t.Errorf("%d confirmations queued, want 1 (bob's)", got)
	}

	if _, err := optin.Import(t.Context(), e.store, newsletter.ID, "test", strings.NewReader("name\nAna\n"), nil); err == nil ||
		!strings.Contains(err.Error(), "line 1") {
		t.Errorf("a CSV without an email column: %v", err)
	}
	if _, err := optin.Import(t.Context(), e.store, "nope", "test", strings.NewReader(csv), nil); err == nil {
		t.Error("import into an unknown list succeeded")
	}
}

// BenchmarkImport measures rows per second through the CSV importer into the store.
//
//	go test ./optin -run '^$' -bench Import -benchtime 100000x
func BenchmarkImport(b *testing.B) {
	e := newEnv(b)
	var sb strings.Builder
	sb.WriteString("email,name,consented_at,consent_source,city\n")
	for i := range b.N {
		fmt.Fprintf(&sb, "p%07d@example.org,Person %d,2024-05-01T10:00:00Z,bench,Lyon\n", i, i)
	}
	b.ResetTimer()
	start := time.Now()
	res, err := optin.Import(b.Context(), e.store, newsletter.ID, "bench", strings.NewReader(sb.String()), nil)
	if err != nil || res.Imported != b.N {
		b.Fatalf("%+v, %v", res, err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
	b.ReportMetric(0, "ns/op")
}

// An address erased at the person's request comes back through an import only with
// proof of consent given after the erasure; a signup confirmed by double opt-in still
// brings it back.
func TestImportRespectsErasure(t *testing.T) {
	e := newEnv(t)
	sub, _ := e.subscribe(t, signup("gone@example.org"))
	if _, err := preferences.NewEraser(e.store, nil, nil).Erase(t.Context(), sub, "subscriber"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	before := e.clock.Now().Add(-2 * time.Hour).Format(time.RFC3339)
	after := e.clock.Now().Format(time.RFC3339)
	csv := "email,consented_at,consent_source\n" +
		"gone@example.org,,\n" + // 2: no proof
		"gone@example.org," + before + ",old CSV\n" // 3: proof older than the erasure
	res, err := optin.Import(t.Context(), e.store, newsletter.ID, "test", strings.NewReader(csv), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 0 || res.Pending != 0 || len(res.Rejected) != 2 || res.Rejected[0].Line != 2 || res.Rejected[1].Line != 3 {
		t.Fatalf("old rows of an erased address: %+v", res)
	}
	res, err = optin.Import(t.Context(), e.store, newsletter.ID, "test",
		strings.NewReader("email,consented_at,consent_source\ngone@example.org,"+after+",fresh form\n"), nil)
	if err != nil || res.Imported != 1 {
		t.Fatalf("fresh proof: %+v, %v", res, err)
	}
}

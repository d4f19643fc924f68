package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/mailer/smtptest"
)

// TestLedgerHeadAnchorsTheLedger saves the signed head from the API, then cuts the
// newest event off the stopped server's ledger: the chain alone still verifies, the
// command given the saved head exits 1 and says events were cut off.
func TestLedgerHeadAnchorsTheLedger(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	env := serveEnv(dir, sink.URL())
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	for i := 0; i < 3; i++ {
		c.signup(fmt.Sprintf("head-%d@example.org", i), "weekly")
	}
	sink.WaitFor(t, 3, 10*time.Second)
	waitUntil(t, func() bool { return len(c.ledger("type=confirmation_sent")) == 3 })
	status, head := c.do("GET", "/api/v1/ledger/head", "", "", "Authorization", "Bearer "+testAdminKey)
	if status != 200 || !strings.Contains(head, `"signature"`) || !strings.Contains(head, `"seq":6`) {
		t.Fatalf("GET /api/v1/ledger/head: %d %s", status, head)
	}
	srv.Stop(t)
	headFile := filepath.Join(t.TempDir(), "head.json")
	if err := os.WriteFile(headFile, []byte(head), 0o600); err != nil {
		t.Fatal(err)
	}
	cmdEnv := []string{"CONSENTMAIL_DATA_DIR=" + dir, "CONSENTMAIL_SECRET=" + testSecret}
	verify := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"consentmail", "ledger", "verify"}, args...), cmdEnv, &out, io.Discard)
		return out.String(), err
	}
	if out, err := verify("--head", headFile); err != nil || !strings.Contains(out, "saved head") {
		t.Fatalf("intact ledger against its head: %v %q", err, out)
	}

	db, err := bbolt.Open(filepath.Join(dir, dbFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("prefs.ledger")).Delete([]byte{0, 0, 0, 0, 0, 0, 0, 6})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "ledger OK: 5 events") {
		t.Fatalf("without the saved head the cut is invisible: %v %q", err, out)
	}
	out, err := verify("--head", headFile)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, "cut off") {
		t.Fatalf("against the saved head: %v %q, want exit 1 saying events were cut off", err, out)
	}
	// A head edited to match the cut ledger no longer carries a valid signature.
	forged := strings.Replace(head, `"seq":6`, `"seq":5`, 1)
	if err := os.WriteFile(headFile, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := verify("--head", headFile); !errors.As(err, &ee) || !strings.Contains(out, "REFUSED") {
		t.Fatalf("forged head: %v %q", err, out)
	}
}

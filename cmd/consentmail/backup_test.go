package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/mailer/smtptest"
	"consentmail/preferences"
)

// TestBackupUnderLoadAndRestoreKeepsErasures takes a backup from the running server
// while signups keep arriving, erases a person after it, stops, restores and starts
// again: the backup verifies, the person stays erased, the ledger verifies, and the
// replaced store was kept aside.
func TestBackupUnderLoadAndRestoreKeepsErasures(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	env := serveEnv(dir, sink.URL())
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	c.signup("erased-later@example.org", "weekly")
	waitUntil(t, func() bool { return len(c.ledger("type=signup")) == 1 })
	victim := c.ledger("type=signup")[0].Subscriber

	// Signups go on while the backup streams.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var during atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				body := fmt.Sprintf(`{"email":"load-%d-%d@example.org","lists":["weekly"],"consent":true}`, w, i)
				if st, _ := c.do("POST", "/api/v1/signups", "application/json", body); st == http.StatusAccepted {
					during.Add(1)
				}
			}
		}()
	}
	waitUntil(t, func() bool { return during.Load() >= 20 })
	backup := filepath.Join(t.TempDir(), "backup.db")
	cmdEnv := []string{"CONSENTMAIL_DATA_DIR=" + dir, "CONSENTMAIL_SECRET=" + testSecret,
		"CONSENTMAIL_ADMIN_API_KEY=" + testAdminKey, "CONSENTMAIL_BASE_URL=" + srv.BaseURL}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"consentmail", "backup", backup}, cmdEnv, &out, io.Discard); err != nil {
		t.Fatalf("backup: %v\n%s", err, out.String())
	}
	stop.Store(true)
	wg.Wait()
	if !strings.Contains(out.String(), "fetched from "+srv.BaseURL) || !strings.Contains(out.String(), "ledger OK") {
		t.Fatalf("backup printed %q", out.String())
	}
	inBackup := countEvents(t, backup)
	if inBackup < 21 {
		t.Fatalf("the backup holds %d events, want the victim's signup and the load's first 20 at least", inBackup)
	}

	// After the backup: the person is erased.
	if st := c.admin("DELETE", "/api/v1/subscribers/"+victim, "", nil); st != http.StatusOK {
		t.Fatalf("erase: %d", st)
	}
	srv.Stop(t)

	out.Reset()
	if err := run(context.Background(), []string{"consentmail", "restore", backup}, cmdEnv, &out, io.Discard); err != nil {
		t.Fatalf("restore: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "1 re-applied") {
		t.Fatalf("restore printed %q, want the erasure re-applied", out.String())
	}
	aside, _ := filepath.Glob(filepath.Join(dir, dbFile+".replaced-*"))
	if len(aside) != 2 || preferences.KeyFilePath(aside[0]) != aside[1] {
		t.Fatalf("replaced store kept aside: %v, want the data file and its key file", aside)
	}

	srv = startServer(t, env, "serve")
	c = newClient(t, srv.BaseURL)
	if state, _ := c.subscriberState(victim); state != preferences.StatusErased {
		t.Fatalf("after the restore the person is %s, want erased", state)
	}
	// The others' data opens with the key file the backup carried.
	var found struct {
		Email string `json:"email"`
	}
	if st := c.admin("GET", "/api/v1/subscribers/lookup?email=load-0-0@example.org", "", &found); st != 200 || found.Email != "load-0-0@example.org" {
		t.Fatalf("a person kept by the restore: %d %+v, want their address read", st, found)
	}
	var verify struct {
		OK bool `json:"ok"`
	}
	if st := c.admin("GET", "/api/v1/ledger/verify", "", &verify); st != 200 || !verify.OK {
		t.Fatalf("ledger after the restore: %d %+v", st, verify)
	}
	// While the server runs, restore refuses.
	out.Reset()
	err := run(context.Background(), []string{"consentmail", "restore", backup}, cmdEnv, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "stop it") {
		t.Fatalf("restore with a server running: %v", err)
	}
	if st, _ := c.do("GET", "/api/v1/backup", "", "", "Authorization", "Bearer "+c.apiKey("dpo")); st != http.StatusForbidden {
		t.Errorf("a dpo key fetched a backup: %d", st)
	}
}

// TestBackupWithoutServer copies the store file when no server holds it.
func TestBackupWithoutServer(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	srv := startServer(t, serveEnv(dir, sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	c.signup("ana@example.org", "weekly")
	waitUntil(t, func() bool { return len(c.ledger("type=signup")) == 1 })
	srv.Stop(t)
	backup := filepath.Join(t.TempDir(), "b.db")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"consentmail", "backup", backup}, []string{"CONSENTMAIL_DATA_DIR=" + dir}, &out, io.Discard); err != nil {
		t.Fatalf("backup: %v", err)
	}
	if !strings.Contains(out.String(), "copied from") || countEvents(t, backup) < 1 {
		t.Fatalf("backup printed %q", out.String())
	}
	if _, err := os.Stat(backup + ".partial"); !os.IsNotExist(err) {
		t.Errorf("partial file left behind: %v", err)
	}
}

// countEvents counts the ledger events of the data file in the backup archive at path.
func countEvents(tb testing.TB, path string) int {
	tb.Helper()
	data := filepath.Join(tb.TempDir(), dbFile)
	if err := extractBackup(path, data, preferences.KeyFilePath(data)); err != nil {
		tb.Fatal(err)
	}
	db, err := bbolt.Open(data, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	res, err := preferences.VerifyLedgerOf(context.Background(), db)
	if err != nil || !res.OK {
		tb.Fatalf("backup ledger: %+v %v", res, err)
	}
	return int(res.Events)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
)

// journalFile is the erasure journal's default file, in the data directory.
const journalFile = "erasures.journal"

// fileArg takes a command's FILE argument, given before its flags.
func fileArg(usage string, args []string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, errors.New(usage)
	}
	return args[0], args[1:], nil
}

// runBackup writes a consistent copy of the store to FILE: from the running server
// (GET /api/v1/backup) when one holds the data directory, else from the file itself.
// The copy is written beside FILE and renamed once complete and synced, then its
// ledger is verified.
func runBackup(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	file, args, err := fileArg("usage: consentmail backup FILE [--server URL] [--key KEY]", args)
	if err != nil {
		return err
	}
	var from, key string
	cfg, err := commandConfig("backup", args, env, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "server", "", "base URL of the running server (default: CONSENTMAIL_BASE_URL, else http://HTTP_ADDR)")
		fs.StringVar(&key, "key", "", "an admin API key (default: CONSENTMAIL_ADMIN_API_KEY)")
	})
	if err != nil {
		return err
	}
	tmp := file + ".partial"
	defer os.Remove(tmp)
	how := "copied from " + filepath.Join(cfg.DataDir, dbFile)
	db, err := bbolt.Open(filepath.Join(cfg.DataDir, dbFile), 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	switch {
	case errors.Is(err, bbolt.ErrTimeout):
		// A server holds the file: ask it.
		if from == "" {
			from = cfg.BaseURL
		}
		if from == "" {
			from = "http://" + cfg.HTTPAddr
		}
		if key == "" {
			key = cfg.AdminAPIKey
		}
		if key == "" {
			return errors.New("a server holds the data directory: give an admin API key (--key or CONSENTMAIL_ADMIN_API_KEY; --server if it is not at CONSENTMAIL_BASE_URL) to fetch the backup from it")
		}
		if err := fetchBackup(ctx, strings.TrimRight(from, "/")+"/api/v1/backup", key, tmp); err != nil {
			return err
		}
		how = "fetched from " + from
	case err != nil:
		return fmt.Errorf("open the store: %w", err)
	default:
		err = db.View(func(tx *bbolt.Tx) error { return archiveStore(tx, tmp) })
		db.Close()
		if err != nil {
			return fmt.Errorf("copy the store: %w", err)
		}
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	res, err := verifyBackup(ctx, tmp)
	if err != nil {
		return fmt.Errorf("the backup does not open: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("the backup's ledger does not verify at seq %d: %s", res.FirstBadSeq, res.Reason)
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	st, _ := os.Stat(file)
	fmt.Fprintf(stdout, "backup written to %s (%d bytes, %s); ledger OK: %d events, head %s\n", file, st.Size(), how, res.Events, res.Head)
	return nil
}

func fetchBackup(ctx context.Context, url, key, dst string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch the backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("fetch the backup: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch the backup: %w", err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("fetch the backup: got %d of %d bytes", n, resp.ContentLength)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// archiveStore writes to dst the backup archive of the store tx reads (no server
// holds it) and of its key file.
func archiveStore(tx *bbolt.Tx, dst string) error {
	keys, err := os.ReadFile(preferences.KeyFilePath(tx.DB().Path()))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err // a store from before the key file has none: its entry is empty
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = preferences.WriteBackup(f, tx.Size(), func(w io.Writer) error {
		_, err := tx.WriteTo(w)
		return err
	}, keys)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// verifyBackup extracts the data file of a backup archive beside it, walks its
// ledger, and removes the extract.
func verifyBackup(ctx context.Context, path string) (preferences.VerifyResult, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".verify-")
	if err != nil {
		return preferences.VerifyResult{}, err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, dbFile)
	if err := extractBackup(path, data, preferences.KeyFilePath(data)); err != nil {
		return preferences.VerifyResult{}, err
	}
	return verifyStoreFile(ctx, data)
}

func extractBackup(path, dataPath, keysPath string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return preferences.ExtractBackup(f, dataPath, keysPath)
}

// verifyStoreFile opens a store file read-only and walks its ledger (no secret needed).
func verifyStoreFile(ctx context.Context, path string) (preferences.VerifyResult, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return preferences.VerifyResult{}, err
	}
	defer db.Close()
	return preferences.VerifyLedgerOf(ctx, db)
}

// runRestore replaces the store in the data directory by a backup: refused while a
// server holds it; the replaced file is kept aside; the backup's ledger is verified,
// then every erasure of the journal made after the backup is applied again, so that
// a restore never brings an erased person back.
func runRestore(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	file, args, err := fileArg("usage: consentmail restore FILE", args)
	if err != nil {
		return err
	}
	cfg, err := commandConfig("restore", args, env, stderr, nil)
	if err != nil {
		return err
	}
	if cfg.Secret == nil {
		return errors.New("restore: the secret (CONSENTMAIL_SECRET) is needed to apply the erasures made since the backup")
	}
	res, err := verifyBackup(ctx, file)
	if err != nil {
		return fmt.Errorf("%s is not a consentmail backup: %w", file, err)
	}
	if !res.OK {
		return fmt.Errorf("%s: its ledger does not verify at seq %d (%s); not restored", file, res.FirstBadSeq, res.Reason)
	}
	entries, err := preferences.ReadErasureJournal(cfg.ErasureJournal)
	if err != nil {
		return err
	}
	// Take the data directory's lock: no server may run meanwhile.
	live := filepath.Join(cfg.DataDir, dbFile)
	current, err := openDB(cfg.DataDir, "stop it before restoring")
	if err != nil {
		return err
	}
	liveKeys := preferences.KeyFilePath(live)
	staged, stagedKeys := live+".restoring", liveKeys+".restoring"
	if err := extractBackup(file, staged, stagedKeys); err != nil {
		current.Close()
		return err
	}
	aside := fmt.Sprintf("%s.replaced-%s", live, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(live, aside); err != nil {
		current.Close()
		return err
	}
	current.Close()
	if err := os.Rename(liveKeys, preferences.KeyFilePath(aside)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore: %w (the replaced store is at %s)", err, aside)
	}
	if err := os.Rename(stagedKeys, liveKeys); err != nil {
		return fmt.Errorf("restore: %w (the replaced store is at %s)", err, aside)
	}
	if err := os.Rename(staged, live); err != nil {
		return fmt.Errorf("restore: %w (the replaced store is at %s)", err, aside)
	}
	fmt.Fprintf(stdout, "restored %s (ledger OK: %d events); the replaced store is kept at %s\n", file, res.Events, aside)

	db, err := openDB(cfg.DataDir, "stop it before restoring")
	if err != nil {
		return err
	}
	defer db.Close()
	journal, err := preferences.OpenErasureJournal(cfg.ErasureJournal)
	if err != nil {
		return err
	}
	store, err := openStore(db, cfg.Secret, time.Now, preferences.WithErasureJournal(journal))
	if err != nil {
		return err
	}
	defer store.Close()
	eraser := preferences.NewEraser(store, nil, nil)
	rep, err := eraser.ReplayErasures(ctx, entries, "restore (erasure journal)")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "erasures made after the backup: %d re-applied, %d addresses suppressed, %d already erased in it\n",
		rep.Erased, rep.Suppressed, rep.Already)
	after, err := store.VerifyLedger(ctx)
	if err != nil {
		return err
	}
	if !after.OK {
		return fmt.Errorf("the restored ledger does not verify at seq %d: %s", after.FirstBadSeq, after.Reason)
	}
	fmt.Fprintf(stdout, "ledger OK: %d events, head %s\n", after.Events, after.Head)
	return nil
}

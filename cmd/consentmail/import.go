package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"consentmail/optin"
	"consentmail/preferences"
	"consentmail/queue"
)

// runImport is `consentmail import --list L [--send-optin] file.csv`: the import API's
// semantics for files of any size, streamed in batches. It opens the data directory,
// so it refuses (within 2 s) while a server runs. Confirmations asked for with
// --send-optin wait in the queue until the server starts.
func runImport(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	resolve := configFlags(fs, env)
	list := fs.String("list", "", "the list to import into")
	send := fs.Bool("send-optin", false, "send a confirmation to rows without proof of consent")
	// The file may come after the flags or before them.
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitError{0}
		}
		return exitError{2}
	}
	if fs.NArg() == 1 && file == "" {
		file = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(fs.NArg()-1))
	}
	if *list == "" || file == "" {
		return errors.New("usage: consentmail import --list LIST [--send-optin] file.csv")
	}
	cfg, err := resolve(true)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if cfg.Secret == nil {
		// Personal data is sealed with keys derived from the secret: never invent one.
		raw, err := os.ReadFile(filepath.Join(cfg.DataDir, "secret"))
		if err != nil {
			return errors.New("import needs the service's secret: set CONSENTMAIL_SECRET (dev keeps it in the data directory)")
		}
		cfg.Secret = []byte(strings.TrimSpace(string(raw)))
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	db, err := openDB(cfg.DataDir, "use POST /api/v1/lists/{id}/imports")
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := openStore(db, cfg.Secret, time.Now)
	if err != nil {
		return err
	}
	defer store.Close()
	var enqueue preferences.EnqueueTx
	if *send {
		q, err := queue.NewBolt(db, queue.BoltOptions{Commit: store.GroupCommit})
		if err != nil {
			return err
		}
		defer q.Close()
		enqueue = optin.OptinEnqueuer(q)
	}
	start := time.Now()
	res, err := optin.Import(ctx, store, *list, "cli", f, enqueue)
	if errors.Is(err, preferences.ErrNotFound) {
		return fmt.Errorf("no list %q", *list)
	}
	if err != nil {
		return err
	}
	took := time.Since(start)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		return err
	}
	rows := res.Imported + res.Pending + len(res.Rejected)
	fmt.Fprintf(stderr, "imported %d, pending %d, rejected %d in %v (%.0f rows/s)\n", res.Imported, res.Pending,
		len(res.Rejected), took.Round(time.Millisecond), float64(rows)/took.Seconds())
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
)

// dbFile is the bbolt file of a consentmail data directory.
const dbFile = "consentmail.db"

// benchList is the list every recipient confirmed.
const benchList = "bench"

var cities = []string{"Lyon", "Paris", "Nantes", "Lille", "Bordeaux", "Toulouse", "Marseille", "Strasbourg"}

// buildAudience writes a data directory's database in dir holding the list benchList
// and n subscribers confirmed on it with a proof of consent, as an import would leave
// them: recipient i is recipientAddr(i). It opens bbolt as the server does and fills
// it with concurrent imports, which group-commit; fsync is off while filling, as the
// file is scratch until it is synced once at the end.
func buildAudience(ctx context.Context, dir string, n int, secret []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The freelist is not written at each commit (it is rebuilt when the server opens
	// the file): in a file growing by gigabytes, writing it at every commit made the
	// build of 10,000,000 subscribers take hours.
	db, err := bbolt.Open(filepath.Join(dir, dbFile), 0o600, &bbolt.Options{Timeout: time.Second,
		FreelistType: bbolt.FreelistMapType, InitialMmapSize: 1 << 30, NoFreelistSync: true})
	if err != nil {
		return err
	}
	defer db.Close()
	db.MaxBatchDelay = 2 * time.Millisecond
	db.NoSync = true
	store, err := preferences.New(db, secret, time.Now)
	if err != nil {
		return err
	}
	defer store.Close()
	_, err = store.CreateList(ctx, preferences.List{ID: benchList, Name: "Bench", Purpose: "benchmark",
		ConsentText: "yes", Public: true})
	if err != nil {
		return fmt.Errorf("create list: %w", err)
	}
	consented := time.Now().Add(-24 * time.Hour)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for w := range errs {
		wg.Go(func() {
			rows := make([]preferences.ImportRow, 0, preferences.MaxImportBatch)
			for ctx.Err() == nil {
				from := int(next.Add(preferences.MaxImportBatch)) - preferences.MaxImportBatch
				if from >= n {
					return
				}
				rows = rows[:0]
				for i := from; i < min(from+preferences.MaxImportBatch, n); i++ {
					email := recipientAddr(i)
					attrs, _ := json.Marshal(map[string]string{"city": cities[i%len(cities)]})
					rows = append(rows, preferences.ImportRow{Email: email, IndexKey: email, Name: "Subscriber " + strconv.Itoa(i),
						Locale: "en", Attributes: attrs, ConsentedAt: consented, ConsentSource: "bench"})
				}
				res, err := store.Import(ctx, benchList, "bench", rows, nil)
				if err == nil && res.Imported != len(rows) {
					err = fmt.Errorf("%d of %d rows confirmed", res.Imported, len(rows))
				}
				if err != nil {
					errs[w] = fmt.Errorf("import rows %d-%d: %w", from, from+len(rows)-1, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.Close(); err != nil {
		return err
	}
	if err := db.Sync(); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	return writeFreelist(filepath.Join(dir, dbFile))
}

// writeFreelist opens the file as the server does, which finds the free pages by
// walking the whole file since none were written, and commits once, which writes them:
// the server then opens the file as one it wrote itself, at once.
func writeFreelist(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return err
	}
	if err := db.Update(func(*bbolt.Tx) error { return nil }); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// copyDB copies the database built by buildAudience, with its key file, into a fresh
// data directory: every campaign changes the one it runs on.
func copyDB(from, toDir string) error {
	if err := os.MkdirAll(toDir, 0o700); err != nil {
		return err
	}
	data := filepath.Join(from, dbFile)
	for _, name := range []string{data, preferences.KeyFilePath(data)} {
		if err := copyNew(name, filepath.Join(toDir, filepath.Base(name))); err != nil {
			return err
		}
	}
	return nil
}

func copyNew(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
)

// dumpStats prints the size of every bucket of the database in dir: what a
// subscriber costs on disk (BenchmarkSignups prints it when BENCH_STATS is set).
func dumpStats(tb testing.TB, dir string) {
	tb.Helper()
	db, err := bbolt.Open(filepath.Join(dir, dbFile), 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bbolt.Tx) error {
		fi, _ := os.Stat(filepath.Join(dir, dbFile))
		fmt.Printf("file %d bytes, tx size %d, freepages %d\n", fi.Size(), tx.Size(), db.Stats().FreePageN)
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			st := b.Stats()
			var kv int
			b.ForEach(func(k, v []byte) error { kv += len(k) + len(v); return nil })
			fmt.Printf("%-32s keys %7d kv %9d leafpages %6d alloc %9d inuse %9d\n", name, st.KeyN, kv, st.LeafPageN, st.LeafAlloc+st.BranchAlloc, st.LeafInuse+st.BranchInuse)
			return nil
		})
	})
}

package preferences

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
)

// A seeker answers every lookup as Bucket.Get does, one cursor serving them all: keys
// present (with a value, with an empty one), absent before, between and after them,
// across many pages, and the name of a nested bucket (nil, as Get).
func TestSeekerIsGet(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "seek.db"), 0o600, BoltOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < 5000; i += 2 {
			if err := b.Put(fmt.Appendf(nil, "k%05d", i), bytes.Repeat([]byte{byte(i)}, i%50)); err != nil {
				return err
			}
		}
		_, err = b.CreateBucket([]byte("k02501"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		s := seekerOf(b)
		keys := [][]byte{[]byte("a"), []byte("k"), []byte("k02501"), []byte("k04998"), []byte("k04999"), []byte("z"), []byte("k02501x")}
		for i := 0; i < 5000; i += 7 {
			keys = append(keys, fmt.Appendf(nil, "k%05d", i))
		}
		for _, k := range keys {
			got, want := s.Get(k), b.Get(k)
			if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Errorf("key %q: seeker %q (nil %v), Get %q (nil %v)", k, got, got == nil, want, want == nil)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

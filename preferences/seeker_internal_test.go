package preferences

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
)

// A Seeker answers every lookup as Bucket.Get does, one cursor serving them all: keys
// present (with a value, with an empty one), absent before, between and after them,
// across many pages, the name of a nested bucket (nil, as Get), and, in a write
// transaction, keys put after the Seeker was made.
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
		s := SeekerOf(b)
		keys := [][]byte{[]byte("a"), []byte("k"), []byte("k02501"), []byte("k04998"), []byte("k04999"), []byte("z"), []byte("k02501x")}
		for i := 0; i < 5000; i += 7 {
			keys = append(keys, fmt.Appendf(nil, "k%05d", i))
		}
		for _, k := range keys {
			got, want := s.Get(k), b.Get(k)
			if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Errorf("key %q: Seeker %q (nil %v), Get %q (nil %v)", k, got, got == nil, want, want == nil)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// In a write transaction, one Seeker made first sees each key put after it.
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		s := SeekerOf(b)
		for i := 1; i < 5000; i += 6 {
			k := fmt.Appendf(nil, "k%05d", i)
			if s.Get(k) != nil {
				t.Errorf("key %q found before it was put", k)
			}
			if err := b.Put(k, []byte{1, byte(i)}); err != nil {
				return err
			}
			if got := s.Get(k); !bytes.Equal(got, []byte{1, byte(i)}) {
				t.Errorf("key %q just put: Seeker %q", k, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

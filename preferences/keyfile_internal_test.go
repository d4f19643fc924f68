package preferences

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

var internalSecret = []byte("an-internal-test-secret-of-32-bytes!!")

// Replacing a group's KEK, interrupted after the new KEK is on disk and before the
// group is wrapped anew, is finished by calling again, also after a restart; once
// done, the old epoch is gone from the file and calling again does nothing.
func TestKeyFileDestroyResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.keys")
	k, err := openKeyFile(path, internalSecret)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if g, e, _, err := k.allocate(); err != nil || g != 0 || e != 1 {
			t.Fatalf("allocate: group %d epoch %d, %v; want 0, 1", g, e, err)
		}
	}
	failed := errors.New("the process died")
	if err := k.destroy(0, 1, func(uint32, uint32, cipher.AEAD) error { return failed }); !errors.Is(err, failed) {
		t.Fatalf("destroy with the rewrap failing: %v", err)
	}
	k.close()
	if k, err = openKeyFile(path, internalSecret); err != nil {
		t.Fatal(err)
	}
	for _, e := range []uint32{1, 2} {
		if _, err := k.kek(0, e); err != nil {
			t.Fatalf("after the restart, epoch %d: %v; want both epochs until the group is wrapped anew", e, err)
		}
	}
	var calls []uint32
	rewrap := func(group, to uint32, _ cipher.AEAD) error { calls = append(calls, to); return nil }
	if err := k.destroy(0, 1, rewrap); err != nil || len(calls) != 1 || calls[0] != 2 {
		t.Fatalf("destroy again: %v, rewrap to %v; want one rewrap to epoch 2", err, calls)
	}
	if err := k.destroy(0, 1, rewrap); err != nil || len(calls) != 1 {
		t.Fatalf("destroy once done: %v, rewraps %v; want nothing more", err, calls)
	}
	k.close()
	if k, err = openKeyFile(path, internalSecret); err != nil {
		t.Fatal(err)
	}
	defer k.close()
	if _, err := k.kek(0, 1); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("epoch 1 after the restart: %v, want ErrKeyDestroyed", err)
	}
	if _, err := k.kek(0, 2); err != nil {
		t.Errorf("epoch 2: %v", err)
	}
	if g, _, _, err := k.allocate(); err != nil || g != 1 {
		t.Errorf("a new data key after the restart: group %d, %v; want a group of its own", g, err)
	}
}

// A store made before the key file is migrated at its first open by this version:
// every data key is wrapped under a key group, the data reads as before, and the old
// wrapped keys are gone from the data file (its free pages overwritten).
func TestLegacyKeysMigrate(t *testing.T) {
	defer func(n int) { migrateBatch = n }(migrateBatch)
	migrateBatch = 1 // one key per transaction: each batch walks on from the last
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "c.db")
	db, err := bbolt.Open(dbPath, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(db, internalSecret, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.CreateList(ctx, List{ID: "news", Name: "News", Purpose: "news", ConsentText: "yes", Public: true}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, addr := range []string{"ana@example.org", "ben@example.org", "cleo@example.org"} {
		in := SignupInput{Email: addr, IndexKey: addr, Lists: []string{"news"}, Source: "test"}
		var id string
		if err := s.Signup(ctx, in, func(_ *bbolt.Tx, r OptinRequest) error { id = r.Subscriber; return nil }); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// Turn the store into one of an older version: keys sealed under the root
	// secret's wrapping key, no key groups, no key file.
	var legacy [][]byte
	err = db.Update(func(tx *bbolt.Tx) error {
		keys := tx.Bucket(bucketDataKeys)
		for _, id := range ids {
			raw, err := s.keys.unwrapRaw(nil, id, keys.Get([]byte(id)))
			if err != nil {
				return err
			}
			w := seal(s.keys.wrap, raw, []byte(id))
			for len(legacy) == 0 && w[0] != wrappedPrefix {
				// The first one begins as a key of a group does, as one legacy key
				// in 256 does: its random nonce's first byte is 'K'.
				w = seal(s.keys.wrap, raw, []byte(id))
			}
			legacy = append(legacy, w)
			if err := keys.Put([]byte(id), w); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketKeyGroups); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketKeyGroups)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Another write, so that the legacy keys' pages are freed copies too.
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketDataKeys).Put([]byte("zz"), []byte{}) }); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(KeyFilePath(dbPath)); err != nil {
		t.Fatal(err)
	}

	if s, err = New(db, internalSecret, time.Now); err != nil {
		t.Fatalf("open the older store: %v", err)
	}
	defer s.Close()
	for i, id := range ids {
		sub, err := s.Subscriber(ctx, id)
		if err != nil || sub.Email == "" {
			t.Fatalf("subscriber %d after the migration: %+v, %v", i, sub, err)
		}
		err = db.View(func(tx *bbolt.Tx) error {
			w := tx.Bucket(bucketDataKeys).Get([]byte(id))
			g, _, ok := wrappedKeyGroup(w)
			if !ok || tx.Bucket(bucketKeyGroups).Get(keyGroupKey(g, id)) == nil {
				t.Errorf("subscriber %d: key %x not in a key group", i, w)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if s.keys.file.migrated != migratedNow {
		t.Errorf("the key file records migration %d, want %d: every open would walk the keys again", s.keys.file.migrated, migratedNow)
	}
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range legacy {
		if bytes.Contains(raw, w) {
			t.Errorf("legacy wrapped key %d is still in the data file", i)
		}
	}
	db.Close()
}

// A data file of a version that queued send-time hard bounces with the relay's reply
// in the clear (the address quoted) keeps such replies in free pages once they were
// handled. The first open by this version overwrites the free pages, once: the reply
// is then nowhere in the file. A later open does not walk the file again (the same
// leftover, made after it, stays), which is also this test's proof that the scan
// below finds an address left in a free page.
func TestFreePagesScrubbedOnceAfterUpgrade(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "c.db")
	db, err := bbolt.Open(dbPath, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	open := func() *Store {
		t.Helper()
		s, err := New(db, internalSecret, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// leftover queues replies as an earlier version did, in a bucket of its own (the
	// store does not know campaigns.hard), handles them and reports whether the
	// address is then in the data file. They fill some 60 pages, more than the writes
	// of an open reuse.
	reply := []byte("550 5.1.1 <dora.leftover@example.org>: Recipient address rejected")
	leftover := func() bool {
		t.Helper()
		return inFreePages(t, db, "test.hard", func(tx *bbolt.Tx, b *bbolt.Bucket) error {
			for i := range 3000 {
				if err := b.Put(fmt.Appendf(nil, "%08d", i), reply); err != nil {
					return err
				}
			}
			return nil
		}, "dora.leftover@example.org")
	}

	s := open()
	if s.keys.file.migrated != migratedNow {
		t.Fatalf("a new store's key file records migration %d, want %d", s.keys.file.migrated, migratedNow)
	}
	if !leftover() {
		t.Fatal("the handled reply is not in the data file's free pages: this test cannot show the scrub")
	}
	// The file as the version before this one left it.
	if err := s.keys.file.markMigrated(migratedKeys); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open()
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("dora.leftover@example.org")) {
		t.Error("the first open by this version left a relay's reply with the address in a free page")
	}
	if s.keys.file.migrated != migratedNow {
		t.Errorf("the key file records migration %d, want %d", s.keys.file.migrated, migratedNow)
	}
	leftover()
	s.Close()
	s = open()
	defer s.Close()
	if raw, err = os.ReadFile(dbPath); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("dora.leftover@example.org")) {
		t.Error("a later open walked the free pages again")
	}
}

// The KEKs of an open key file cost their key bytes in memory, not an AES-GCM instance
// each (some 1.2 KB), and a group keeps one KEK inline, not room for two: 20,000
// groups, a store of 5,120,000 subscribers, take under 1.2 MB of heap (2.5 MB with two
// slots each, 24 MB with AEADs).
func TestKeyFileMemoryPerGroup(t *testing.T) {
	const groups = 20000
	path := filepath.Join(t.TempDir(), "k.keys")
	k, err := openKeyFile(path, internalSecret)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 0, groups*keyGroupSize)
	for g := range uint32(groups) {
		slot, _, err := k.newSlot(g, 1)
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, slot...)
		body = append(body, make([]byte, keyGroupSize-len(slot))...)
	}
	if _, err := k.f.WriteAt(body, keyHeaderSize); err != nil {
		t.Fatal(err)
	}
	k.close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if k, err = openKeyFile(path, internalSecret); err != nil {
		t.Fatal(err)
	}
	defer k.close()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if _, err := k.kek(groups-1, 1); err != nil {
		t.Fatalf("the last group's KEK: %v", err)
	}
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d groups take %d KB of heap", groups, grew>>10)
	if grew > 1200<<10 {
		t.Errorf("%d groups take %d KB of heap, want under 1.2 MB", groups, grew>>10)
	}
	runtime.KeepAlive(k)
}

// Once its grace is over, a replaced KEK is wiped from the process's memory too: the
// slot's bytes are zero and the epoch is gone, the group's new KEK still opens.
func TestRetiredKEKIsWipedFromMemory(t *testing.T) {
	k := openWithOneGroup(t)
	old := k.groups[0].newest.key
	if k.openKEK == nil {
		t.Fatal("no AEAD kept for the open group")
	}
	if err := k.destroy(0, 1, func(uint32, uint32, cipher.AEAD) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if k.openKEK != nil {
		t.Error("the open group's AEAD of the replaced KEK is still kept")
	}
	if _, err := k.kek(0, 1); err != nil {
		t.Fatalf("within its grace, epoch 1: %v", err)
	}
	kept := k.groups[0].older
	if kept == nil || kept.key != old || kept.epoch != 1 || kept.retired.IsZero() {
		t.Fatalf("within its grace the replaced KEK is not kept as the older, retired: %+v", kept)
	}
	k.forget(0, 1)
	if g := k.groups[0]; g.older != nil || g.newest.key == old || g.newest.epoch != 2 {
		t.Errorf("after forget the group holds newest epoch %d (the replaced KEK: %v) and an older %v",
			g.newest.epoch, g.newest.key == old, g.older != nil)
	}
	if kept.key != ([32]byte{}) || kept.epoch != 0 {
		t.Error("the replaced KEK's bytes were not zeroed where they lay")
	}
	if _, err := k.kek(0, 1); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("epoch 1 after forget: %v, want ErrKeyDestroyed", err)
	}
	if _, err := k.kek(0, 2); err != nil {
		t.Errorf("the group's new KEK: %v", err)
	}
}

// A group replaced again while its previous KEK is still in its grace takes that KEK's
// place at once: its bytes are zeroed where they lay and its epoch no longer opens; the
// KEK replaced now is the one in its grace, the newest opens.
func TestSecondReplacementWipesTheKEKInItsGrace(t *testing.T) {
	k := openWithOneGroup(t)
	nothing := func(uint32, uint32, cipher.AEAD) error { return nil }
	if err := k.destroy(0, 1, nothing); err != nil {
		t.Fatal(err)
	}
	first := k.groups[0].older // epoch 1, retired, in its grace
	if first == nil || first.epoch != 1 {
		t.Fatalf("after one replacement the older is %+v, want epoch 1", first)
	}
	if err := k.destroy(0, 2, nothing); err != nil {
		t.Fatal(err)
	}
	if first.key != ([32]byte{}) {
		t.Error("the KEK of epoch 1 was not zeroed when its slot was taken")
	}
	if _, err := k.kek(0, 1); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("epoch 1: %v, want ErrKeyDestroyed", err)
	}
	if o := k.groups[0].older; o == nil || o.epoch != 2 || o.retired.IsZero() {
		t.Errorf("the older is %+v, want epoch 2 retired", o)
	}
	for _, epoch := range []uint32{2, 3} {
		if _, err := k.kek(0, epoch); err != nil {
			t.Errorf("epoch %d: %v", epoch, err)
		}
	}
}

// openWithOneGroup opens a new key file, closed at cleanup, whose first group is open.
func openWithOneGroup(t *testing.T) *keyFile {
	t.Helper()
	k, err := openKeyFile(filepath.Join(t.TempDir(), "k.keys"), internalSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.close() })
	if _, _, _, err := k.allocate(); err != nil {
		t.Fatal(err)
	}
	return k
}

// A read's memo of KEKs never outlives its epoch being the group's newest: once the
// group's KEK is replaced, the memo's AEAD of the old epoch is not used again; the old
// epoch opens only through kek, while in its grace, and not at all once forgotten,
// though the memo still holds its AEAD. The new epoch goes into the memo.
func TestKEKMemoEndsWithTheEpoch(t *testing.T) {
	k := openWithOneGroup(t)
	var memo kekMemo
	first, err := k.kekFor(&memo, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := k.kekFor(&memo, 0, 1); err != nil || again != first {
		t.Fatalf("the newest epoch asked again: %v, the memo's AEAD %v; want it reused", err, again == first)
	}
	if err := k.destroy(0, 1, func(uint32, uint32, cipher.AEAD) error { return nil }); err != nil {
		t.Fatal(err)
	}
	inGrace, err := k.kekFor(&memo, 0, 1)
	if err != nil {
		t.Fatalf("epoch 1 within its grace: %v", err)
	}
	if inGrace == first {
		t.Error("epoch 1, replaced, came from the memo instead of the key file")
	}
	k.forget(0, 1)
	if _, err := k.kekFor(&memo, 0, 1); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("epoch 1 forgotten, through a memo that still holds its AEAD: %v, want ErrKeyDestroyed", err)
	}
	second, err := k.kekFor(&memo, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := k.kekFor(&memo, 0, 2); again != second {
		t.Error("the new newest epoch is not kept in the memo")
	}
}

// A read's memo keeps the KEKs of the last kekMemoSize groups it opened: asked for more
// groups in turn, it replaces the oldest, and a group it no longer holds is opened
// again from the key file (a new AEAD, for the same key).
func TestKEKMemoReplacesTheOldest(t *testing.T) {
	k := openWithOneGroup(t)
	k.mu.Lock()
	k.members = 1 // every allocation opens a new group
	k.mu.Unlock()
	const groups = kekMemoSize + 2
	for len(k.groups) < groups {
		if _, _, _, err := k.allocate(); err != nil {
			t.Fatal(err)
		}
	}
	var memo kekMemo
	first := make([]cipher.AEAD, groups)
	for g := range groups {
		a, err := k.kekFor(&memo, uint32(g), 1)
		if err != nil {
			t.Fatal(err)
		}
		first[g] = a
	}
	for g := groups - kekMemoSize; g < groups; g++ {
		if a, err := k.kekFor(&memo, uint32(g), 1); err != nil || a != first[g] {
			t.Errorf("group %d, among the last %d opened: %v, the memo's AEAD %v; want it reused", g, kekMemoSize, err, a == first[g])
		}
	}
	nonce := make([]byte, first[0].NonceSize())
	for g := range groups - kekMemoSize {
		a, err := k.kekFor(&memo, uint32(g), 1)
		if err != nil {
			t.Fatal(err)
		}
		if a == first[g] {
			t.Errorf("group %d, opened before the last %d: its AEAD came from the memo", g, kekMemoSize)
		}
		if plain, err := a.Open(nil, nonce, first[g].Seal(nil, nonce, []byte("data key"), nil), nil); err != nil || string(plain) != "data key" {
			t.Errorf("group %d opened again does not open what its KEK sealed: %q, %v", g, plain, err)
		}
	}
}

// zeroFreePages zeroes every free page, the pages of a freed value that spanned
// several included, and nothing in use: it skips the rest of a page in use, never of
// a free one, whose header is stale. The file checks whole afterwards. With a read
// transaction open it refuses: a page freed since that transaction began is free to
// the scrub and still read by it.
func TestZeroFreePagesKeepsWhatIsInUse(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "z.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	value := func(marker string, i int) []byte {
		return bytes.Repeat(fmt.Appendf(nil, "%s-%02d;", marker, i), 20_000/12) // about 5 pages each
	}
	// Values kept and dropped alternate, so that a freed run follows each run in use.
	dropped := inFreePages(t, db, "drop", func(tx *bbolt.Tx, drop *bbolt.Bucket) error {
		keep, err := tx.CreateBucket([]byte("keep"))
		if err != nil {
			return err
		}
		for i := range 6 {
			if err := keep.Put(fmt.Appendf(nil, "%02d", i), value("KEEP", i)); err != nil {
				return err
			}
			if err := drop.Put(fmt.Appendf(nil, "%02d", i), value("DROP", i)); err != nil {
				return err
			}
		}
		return nil
	}, "DROP-03;")
	if !dropped {
		t.Fatal("the dropped values are not in the file's free pages: this test cannot show the scrub")
	}

	reader, err := db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(zeroFreePages); err == nil {
		t.Error("the scrub ran with a read transaction open")
	}
	reader.Rollback()

	if err := db.Update(zeroFreePages); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("DROP-")) {
		t.Error("a freed value is still in the file")
	}
	err = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("check: %v", err)
		}
		keep := tx.Bucket([]byte("keep"))
		for i := range 6 {
			if got := keep.Get(fmt.Appendf(nil, "%02d", i)); !bytes.Equal(got, value("KEEP", i)) {
				t.Errorf("kept value %d changed (%d bytes)", i, len(got))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// inFreePages fills a new bucket named bucket (fill may write elsewhere in the same
// transaction), deletes it in a second transaction and reports whether the data file
// then holds marker: what the bucket held is left in free pages.
func inFreePages(t *testing.T, db *bbolt.DB, bucket string, fill func(*bbolt.Tx, *bbolt.Bucket) error, marker string) bool {
	t.Helper()
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte(bucket))
		if err != nil {
			return err
		}
		return fill(tx, b)
	})
	if err == nil {
		err = db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte(bucket)) })
	}
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(raw, []byte(marker))
}

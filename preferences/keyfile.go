package preferences

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// The key file holds the key-encryption keys (KEKs) that wrap the subscribers' data
// keys: one KEK per group of up to keyGroupMembers subscribers, in slots of fixed size
// that are overwritten in place. bbolt never overwrites a page: a deleted data key
// lives on in freed pages of the data file. Wrapped under its group's KEK, that copy is
// worthless once the KEK is gone, so an erasure wraps the other members of the group
// under a new KEK and overwrites the old one: work in proportion to a group, not to the
// data file (which had to be scanned whole, under the write lock, before).
//
// Layout: a header of keyHeaderSize bytes (magic, members per group, and how far the
// data file was brought to this version: upgradeDataFile), then per group
// two slots of keySlotSize bytes: a non-zero epoch (big-endian uint32) and the KEK
// sealed under a key derived from the root secret, bound to its group and epoch; an
// empty slot is zeros. A group has one epoch, and two while its KEK is replaced.
const (
	keyFileMagic    = "CMKEYS01"
	keyHeaderSize   = 64
	keySlotSize     = 64 // epoch (4) | nonce (12) | KEK (32) | tag (16)
	keyGroupSize    = 2 * keySlotSize
	keyGroupMembers = 256
	// keyRetireGrace is how long a replaced KEK stays in memory (never on disk), so that
	// a read transaction begun before its group was wrapped anew still opens the data
	// keys it reads; then forget wipes it.
	keyRetireGrace = 10 * time.Minute
)

// KeyFilePath is the key file of the store in the bbolt file dbPath.
func KeyFilePath(dbPath string) string { return dbPath + ".keys" }

// keyFile is the open key file. It is safe for concurrent use.
type keyFile struct {
	f       *os.File
	path    string
	id      []byte // identifies the secret, for stores opened on the same file
	refs    int    // stores using it (openKeyFiles)
	sealer  cipher.AEAD
	members int

	mu     sync.RWMutex
	groups []keyGroup
	open   int // the group taking new data keys (-1: none yet)
	// migrated: how far upgradeDataFile brought the data file (header byte 12), so
	// that it need not look again.
	migrated migration
	filled   int // data keys given from open

	// rotating serialises KEK replacements, and snapshots against them: a snapshot
	// copies the file while no replacement can destroy an epoch its transaction reads.
	rotating sync.Mutex

	// openKEK is the AEAD of the open group's current KEK (group openKEKOf.group at
	// epoch openKEKOf.epoch), made once for the signups that draw from it; under mu.
	openKEK   cipher.AEAD
	openKEKOf struct{ group, epoch uint32 }
}

// keyGroup is a group's KEKs in memory: its newest, in disk slot at, and, while the
// group's KEK is replaced (destroy) and for keyRetireGrace after, the one before in the
// other slot. That one is kept apart and only then, so that a group takes 48 bytes and
// not two slots' worth: at 10,000,000 subscribers (39,000 groups) the groups took 5 MB.
// The newest is never retired: retire only overwrites epochs older than it.
type keyGroup struct {
	newest keySlot
	at     uint8 // the disk slot of newest
	older  *olderSlot
}

// keySlot is one KEK in memory. It keeps the 32 key bytes, not an AEAD: an AES-GCM
// instance takes some 1.2 KB, which at 10,000,000 subscribers (39,000 groups) was 47 MB
// of the process's memory; kek makes the AEAD when it is asked for.
type keySlot struct {
	epoch uint32 // 0: empty
	key   [32]byte
}

// olderSlot is a group's KEK before its newest: still on disk while the group's data
// keys are wrapped anew, then retired.
type olderSlot struct {
	keySlot
	retired time.Time // non-zero: overwritten on disk at that time, in memory until forget
}

// usable reports whether the older KEK may still open data keys: on disk, or retired
// less than keyRetireGrace ago.
func (o *olderSlot) usable() bool {
	return o.retired.IsZero() || time.Since(o.retired) < keyRetireGrace
}

// openKeyFiles are the key files open in this process, by path: stores opened on the
// same data file share one, so that one process never appends a group twice.
var openKeyFiles = struct {
	sync.Mutex
	m map[string]*keyFile
}{m: map[string]*keyFile{}}

// openKeyFile opens the key file at path, creating it when it does not exist.
func openKeyFile(path string, secret []byte) (*keyFile, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	id := DeriveKey(secret, "key-file-id")
	openKeyFiles.Lock()
	defer openKeyFiles.Unlock()
	if k := openKeyFiles.m[abs]; k != nil {
		if !hmac.Equal(k.id, id) {
			return nil, fmt.Errorf("key file %s: open in this process with another secret", path)
		}
		k.refs++
		return k, nil
	}
	sealer, err := newAEAD(DeriveKey(secret, "key-file"))
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	k := &keyFile{f: f, path: abs, id: id, refs: 1, sealer: sealer, members: keyGroupMembers, open: -1}
	if err := k.load(abs); err != nil {
		f.Close()
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	openKeyFiles.m[abs] = k
	return k, nil
}

func (k *keyFile) load(path string) error {
	raw, err := io.ReadAll(k.f)
	if err != nil {
		return err
	}
	if len(raw) == 0 {
		header := make([]byte, keyHeaderSize)
		copy(header, keyFileMagic)
		binary.BigEndian.PutUint32(header[8:], uint32(k.members))
		if _, err := k.f.WriteAt(header, 0); err != nil {
			return err
		}
		if err := k.f.Sync(); err != nil {
			return err
		}
		return syncDir(filepath.Dir(path))
	}
	if len(raw) < keyHeaderSize || string(raw[:8]) != keyFileMagic {
		return errors.New("not a consentmail key file")
	}
	k.members = int(binary.BigEndian.Uint32(raw[8:]))
	k.migrated = migration(raw[12])
	body := raw[keyHeaderSize:]
	// A group appended when the process died may be torn: nothing refers to it (the
	// data file commits after the group is synced).
	whole := len(body) / keyGroupSize * keyGroupSize
	if whole != len(body) {
		if err := k.f.Truncate(int64(keyHeaderSize + whole)); err != nil {
			return err
		}
	}
	opened, failed := 0, 0
	k.groups = make([]keyGroup, 0, whole/keyGroupSize)
	for g := 0; g < whole/keyGroupSize; g++ {
		var grp keyGroup
		for s := range 2 {
			slot := body[g*keyGroupSize+s*keySlotSize:][:keySlotSize]
			epoch := binary.BigEndian.Uint32(slot)
			if epoch == 0 {
				continue
			}
			key, err := k.openSlot(uint32(g), epoch, slot[4:])
			if err != nil {
				// A slot torn by a crash while its group got a new KEK: no data key was
				// wrapped under it yet. A wrong secret fails every slot (below).
				failed++
				continue
			}
			opened++
			// Two KEKs: a replacement interrupted before the older was overwritten
			// (destroy finishes it).
			ks := keySlot{epoch: epoch, key: key}
			switch {
			case grp.newest.epoch == 0:
				grp.newest, grp.at = ks, uint8(s)
			case epoch > grp.newest.epoch:
				grp.older = &olderSlot{keySlot: grp.newest}
				grp.newest, grp.at = ks, uint8(s)
			default:
				grp.older = &olderSlot{keySlot: ks}
			}
		}
		k.groups = append(k.groups, grp)
	}
	if failed > 0 && opened == 0 {
		return errors.New("no key opens with this secret")
	}
	return nil
}

func keyAD(group, epoch uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte("kek"), group), epoch)
}

func (k *keyFile) openSlot(group, epoch uint32, sealed []byte) ([32]byte, error) {
	var key [32]byte
	raw, err := open(k.sealer, sealed, keyAD(group, epoch))
	if err != nil {
		return key, err
	}
	if len(raw) != len(key) {
		return key, fmt.Errorf("key group %d epoch %d: a key of %d bytes", group, epoch, len(raw))
	}
	copy(key[:], raw)
	clear(raw)
	return key, nil
}

// newSlot makes a KEK for group at epoch: its slot's bytes and the key.
func (k *keyFile) newSlot(group, epoch uint32) ([]byte, [32]byte, error) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, key, err
	}
	slot := binary.BigEndian.AppendUint32(make([]byte, 0, keySlotSize), epoch)
	slot = append(slot, seal(k.sealer, key[:], keyAD(group, epoch))...)
	return slot, key, nil
}

func slotOffset(group uint32, s int) int64 {
	return keyHeaderSize + int64(group)*keyGroupSize + int64(s)*keySlotSize
}

// allocate returns the group and epoch a new data key is wrapped under, and the KEK.
// A new group is written and synced before it is returned: the data file never refers
// to a KEK that is not on disk.
func (k *keyFile) allocate() (uint32, uint32, cipher.AEAD, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.f == nil {
		return 0, 0, nil, fmt.Errorf("store opened for its ledger only: %w", ErrKeyDestroyed)
	}
	if k.open < 0 || k.filled >= k.members {
		g := uint32(len(k.groups))
		slot, key, err := k.newSlot(g, 1)
		if err != nil {
			return 0, 0, nil, err
		}
		grp := make([]byte, keyGroupSize)
		copy(grp, slot)
		if _, err := k.f.WriteAt(grp, slotOffset(g, 0)); err != nil {
			return 0, 0, nil, err
		}
		if err := k.f.Sync(); err != nil {
			return 0, 0, nil, err
		}
		k.groups = append(k.groups, keyGroup{newest: keySlot{epoch: 1, key: key}})
		k.open, k.filled = int(g), 0
	}
	s := &k.groups[k.open].newest
	if s.epoch == 0 {
		return 0, 0, nil, errors.New("key file: open group has no key")
	}
	of := struct{ group, epoch uint32 }{uint32(k.open), s.epoch}
	if k.openKEK == nil || k.openKEKOf != of {
		a, err := newAEAD(s.key[:])
		if err != nil {
			return 0, 0, nil, err
		}
		k.openKEK, k.openKEKOf = a, of
	}
	k.filled++
	return of.group, of.epoch, k.openKEK, nil
}

// kek returns the KEK of group at epoch, or ErrKeyDestroyed.
func (k *keyFile) kek(group, epoch uint32) (cipher.AEAD, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if int(group) < len(k.groups) && epoch != 0 {
		if g := &k.groups[group]; g.newest.epoch == epoch {
			return newAEAD(g.newest.key[:])
		} else if o := g.older; o != nil && o.epoch == epoch && o.usable() {
			return newAEAD(o.key[:])
		}
	}
	return nil, fmt.Errorf("key group %d epoch %d: %w", group, epoch, ErrKeyDestroyed)
}

// kekMemo keeps the KEKs one read opened (a few groups at their epochs), for its next
// data keys.
type kekMemo struct {
	at   [kekMemoSize]memoKEK
	next int // the entry replaced next
}

// kekMemoSize is how many KEKs a read keeps: subscribers created in one transaction
// (an import's batch of 1,000) share a millisecond, so their ids, and a campaign's
// order, interleave the four or so groups they were drawn from.
const kekMemoSize = 8

type memoKEK struct {
	group, epoch uint32
	a            cipher.AEAD
}

// kekFor is kek, through memo (nil: none): an AEAD memo holds is reused while its
// epoch is still the group's newest KEK, which kek would expand again; an epoch
// replaced since goes through kek, with its grace and its wiping.
func (k *keyFile) kekFor(memo *kekMemo, group, epoch uint32) (cipher.AEAD, error) {
	if memo == nil {
		return k.kek(group, epoch)
	}
	k.mu.RLock()
	newest := epoch != 0 && int(group) < len(k.groups) && k.groups[group].newest.epoch == epoch
	k.mu.RUnlock()
	if newest {
		for _, m := range memo.at {
			if m.a != nil && m.group == group && m.epoch == epoch {
				return m.a, nil
			}
		}
	}
	a, err := k.kek(group, epoch)
	if err == nil && newest {
		memo.at[memo.next] = memoKEK{group: group, epoch: epoch, a: a}
		memo.next = (memo.next + 1) % kekMemoSize
	}
	return a, err
}

// destroy makes every data key of group wrapped under epoch or earlier unrecoverable:
// it gives the group a new KEK when its newest is epoch, has rewrap wrap every data
// key of the group under the newest (in one transaction of the data file), then
// overwrites the older KEKs in place and syncs. Interrupted anywhere, calling it again
// finishes it; once done, calling it again does nothing.
func (k *keyFile) destroy(group, epoch uint32, rewrap func(group, to uint32, kek cipher.AEAD) error) error {
	k.rotating.Lock()
	defer k.rotating.Unlock()
	if k.f == nil {
		return fmt.Errorf("store opened for its ledger only: %w", ErrKeyDestroyed)
	}
	for {
		k.mu.RLock()
		if int(group) >= len(k.groups) {
			k.mu.RUnlock()
			return fmt.Errorf("key group %d: not in the key file", group)
		}
		g := &k.groups[group] // read under the lock only: no copy of a KEK outlives it
		cur, at, stale := g.newest.epoch, g.at, g.older != nil && g.older.retired.IsZero()
		k.mu.RUnlock()
		if stale {
			// Wrap the group under the newest KEK, then overwrite the older one.
			a, err := k.kek(group, cur)
			if err != nil {
				return err
			}
			if err := rewrap(group, cur, a); err != nil {
				return err
			}
			if err := k.retire(group, cur); err != nil {
				return err
			}
			continue
		}
		if cur > epoch || cur == 0 {
			return nil // epoch is gone
		}
		// cur == epoch, alone: a new KEK in the other slot, then the loop above.
		free := 1 - int(at)
		slot, key, err := k.newSlot(group, cur+1)
		if err != nil {
			return err
		}
		if _, err := k.f.WriteAt(slot, slotOffset(group, free)); err != nil {
			return err
		}
		if err := k.f.Sync(); err != nil {
			return err
		}
		k.mu.Lock()
		grp := &k.groups[group]
		if grp.older != nil {
			clear(grp.older.key[:]) // a retired KEK in its grace: its slot is taken now
		}
		grp.older = &olderSlot{keySlot: grp.newest}
		clear(grp.newest.key[:])
		grp.newest, grp.at = keySlot{epoch: cur + 1, key: key}, uint8(free)
		if k.open == int(group) {
			k.open = -1 // new data keys go to a group of their own
		}
		k.mu.Unlock()
	}
}

// retire overwrites on disk every KEK of group older than keep, and syncs; the
// overwritten KEKs stay in memory for keyRetireGrace.
func (k *keyFile) retire(group, keep uint32) error {
	k.mu.RLock()
	o, at := k.groups[group].older, k.groups[group].at
	k.mu.RUnlock()
	if o == nil || !o.retired.IsZero() || o.epoch >= keep {
		return nil
	}
	if _, err := k.f.WriteAt(make([]byte, keySlotSize), slotOffset(group, 1-int(at))); err != nil {
		return err
	}
	if err := k.f.Sync(); err != nil {
		return err
	}
	k.mu.Lock()
	o.retired = time.Now()
	epoch := o.epoch
	if k.openKEKOf == (struct{ group, epoch uint32 }{group, epoch}) {
		k.openKEK = nil // wraps no new data key, and holds the key's schedule
	}
	k.mu.Unlock()
	time.AfterFunc(keyRetireGrace, func() { k.forget(group, epoch) })
	return nil
}

// forget wipes a retired KEK of group from memory once its grace is over: its bytes
// are zeroed. Copies Go made earlier (an older backing array of groups, the AEAD a
// reader made from it, kept in its kekMemo until the read ends but never used once the
// epoch was replaced) are not wiped; they go when their memory is reused.
func (k *keyFile) forget(group, epoch uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	g := &k.groups[group]
	if o := g.older; o != nil && o.epoch == epoch && !o.retired.IsZero() {
		o.keySlot = keySlot{} // the key's bytes are zeroed where they lie
		g.older = nil
	}
}

// snapshot runs begin (which starts the data file's read transaction) and copies the
// key file, with no KEK replaced meanwhile: every epoch the transaction can read is in
// the copy.
func (k *keyFile) snapshot(begin func() error) ([]byte, error) {
	k.rotating.Lock()
	defer k.rotating.Unlock()
	if k.f == nil {
		return nil, fmt.Errorf("store opened for its ledger only: %w", ErrKeyDestroyed)
	}
	if err := begin(); err != nil {
		return nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	st, err := k.f.Stat()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, st.Size())
	if _, err := k.f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf, nil
}

// migration is how far the data file was brought to this version, in the key file's
// header: each step implies the ones before.
type migration byte

const (
	// migratedKeys: every data key is wrapped under a key group; none is sealed under
	// the root secret as stores made before the key file did.
	migratedKeys migration = 1
	// migratedScrubbed: the free pages were overwritten once after versions that kept
	// personal data in the clear in pages later freed (a relay's reply quoting the
	// address of a send-time hard bounce, queued unredacted in campaigns.hard).
	migratedScrubbed migration = 2
	// migratedDomains: the features' upgrades ran again and the free pages were
	// overwritten again after versions whose campaign counters named a person's own
	// domain (campaigns.Upgrade, through WithUpgrade).
	migratedDomains migration = 3
	// migratedNow is what this version brings every data file to.
	migratedNow = migratedDomains
)

// markMigrated records in the header that the data file was brought to m.
func (k *keyFile) markMigrated(m migration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.f.WriteAt([]byte{byte(m)}, 12); err != nil {
		return err
	}
	if err := k.f.Sync(); err != nil {
		return err
	}
	k.migrated = m
	return nil
}

// close closes the file once the last store using it is closed.
func (k *keyFile) close() error {
	if k.f == nil {
		return nil // LedgerOnly
	}
	openKeyFiles.Lock()
	defer openKeyFiles.Unlock()
	if k.refs--; k.refs > 0 {
		return nil
	}
	delete(openKeyFiles.m, k.path)
	return k.f.Close()
}

// wrapped data keys: 'K' | group (4) | epoch (4) | nonce, key and tag sealed under the
// group's KEK, bound to the subscriber id. Older stores hold keys sealed under a key
// derived from the root secret alone (legacy: 60 bytes, no prefix).
const (
	wrappedPrefix     = 'K'
	legacyWrappedLen  = 12 + 32 + 16 // nonce, key, tag
	groupedWrappedLen = 9 + legacyWrappedLen
)

// wrappedKeyGroup reads the key group and epoch a wrapped data key names. It goes by
// the length as well as the prefix: a legacy key begins with its random nonce, 'K' one
// time in 256.
func wrappedKeyGroup(wrapped []byte) (group, epoch uint32, ok bool) {
	if len(wrapped) != groupedWrappedLen || wrapped[0] != wrappedPrefix {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(wrapped[1:]), binary.BigEndian.Uint32(wrapped[5:]), true
}

func wrapUnder(kek cipher.AEAD, group, epoch uint32, raw []byte, subscriber string) []byte {
	head := make([]byte, 0, 9)
	head = append(head, wrappedPrefix)
	head = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(head, group), epoch)
	return append(head, seal(kek, raw, []byte(subscriber))...)
}

// keyGroupKey is a subscriber's entry in the index of key groups.
func keyGroupKey(group uint32, subscriber string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, group), subscriber...)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// zeroWindow is how much of the data file zeroFreePages reads ahead at once.
const zeroWindow = 4 << 20

// migrateBatch is how many data keys of an older store one transaction looks at.
var migrateBatch = 10_000 // a variable for the tests: batches of one walk on from each other

// upgradeDataFile brings the data file of an earlier version to this one, once, at
// the first open by this version, before anything else runs on the file; the key
// file's header then says so, and later opens skip it. It wraps the data keys of a
// store made before the key file (sealed under a key derived from the root secret)
// under key groups, a batch per transaction, runs the upgrades of other features
// (WithUpgrade: the campaigns rewrite what earlier versions kept of a person in the
// clear, relay replies quoting an address and a person's own domain in the
// per-domain counters), then overwrites the data file's free pages, where the old
// copies of all these remain. It returns how many keys it wrapped anew.
func (s *Store) upgradeDataFile() (int, error) {
	if s.keys.file.migrated >= migratedNow {
		return 0, nil
	}
	total, err := s.wrapLegacyKeys()
	if err != nil {
		return total, err
	}
	for _, fn := range s.upgrades {
		if err := s.db.Update(fn); err != nil {
			return total, fmt.Errorf("upgrade the data file: %w", err)
		}
	}
	if err := s.db.Update(zeroFreePages); err != nil {
		return total, fmt.Errorf("overwrite the data file's free pages: %w", err)
	}
	return total, s.keys.file.markMigrated(migratedNow)
}

// wrapLegacyKeys wraps every legacy data key under a key group (see
// upgradeDataFile) and returns how many it wrapped.
func (s *Store) wrapLegacyKeys() (int, error) {
	if s.keys.file.migrated >= migratedKeys {
		return 0, nil
	}
	total := 0
	var after []byte // the last data key looked at: each batch walks on from there
	for done := false; !done; {
		err := s.db.Update(func(tx *bbolt.Tx) error {
			keys, groups := bucket(tx, bucketDataKeys), bucket(tx, bucketKeyGroups)
			type legacy struct{ id, wrapped []byte }
			var todo []legacy
			c := keys.Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for n := 0; n < migrateBatch && k != nil; k, v = c.Next() {
				if _, _, ok := wrappedKeyGroup(v); !ok && len(v) > 0 {
					todo = append(todo, legacy{bytes.Clone(k), bytes.Clone(v)})
				}
				after, n = bytes.Clone(k), n+1
			}
			done = k == nil
			for _, l := range todo {
				raw, err := s.keys.unwrapRaw(nil, string(l.id), l.wrapped)
				if err != nil {
					return err
				}
				group, epoch, kek, err := s.keys.file.allocate()
				if err != nil {
					return err
				}
				if err := keys.Put(l.id, wrapUnder(kek, group, epoch, raw, string(l.id))); err != nil {
					return err
				}
				if err := groups.Put(keyGroupKey(group, string(l.id)), nil); err != nil {
					return err
				}
			}
			total += len(todo)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("wrap the data keys under key groups: %w", err)
		}
	}
	return total, nil
}

// zeroFreePages overwrites with zeros every free page of the data file and syncs it.
// It must run with no other transaction open: a page freed by a transaction that a
// reader may still see is free here too. The transaction itself writes nothing, so
// none of the pages it sees free is still part of the committed file.
//
// Telling a page's type reads its header through bbolt's map, which asks the kernel
// for one page at a time (bbolt maps the file for random access): from a cold cache,
// 26 s for a file of 1.8 GB. Each stretch of zeroWindow is read ahead with one read,
// as fast as the disk reads in sequence.
func zeroFreePages(tx *bbolt.Tx) error {
	if n := tx.DB().Stats().OpenTxN; n > 0 {
		return fmt.Errorf("%d read transactions open: a page one of them sees may be free", n)
	}
	f, err := os.OpenFile(tx.DB().Path(), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size := int64(tx.DB().Info().PageSize)
	zeros := make([]byte, size)
	ahead := make([]byte, zeroWindow)
	var read int64 // the file is in the page cache up to there
	for id := 2; ; id++ {
		if off := int64(id) * size; off >= read {
			n, err := f.ReadAt(ahead, off)
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			read = off + max(int64(n), size)
		}
		p, err := tx.Page(id)
		if err != nil {
			return err
		}
		if p == nil {
			break
		}
		if p.Type == "free" {
			if _, err := f.WriteAt(zeros, int64(id)*size); err != nil {
				return err
			}
			continue
		}
		id += p.OverflowCount // the rest of a page in use is in use
	}
	return f.Sync()
}

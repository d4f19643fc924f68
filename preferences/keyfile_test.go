package preferences_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

// An erasure replaces the KEK of the erased person's key group and overwrites the old
// one in the key file: an attacker who had kept the person's record and wrapped data
// key (as bbolt's freed pages keep them) puts both back and still reads nothing, while
// the other members of the group, wrapped anew, read as before.
func TestErasureDestroysTheKeyGroupKEK(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCreateList(t, s, "news")
	ana := preftest.Subscribed(t, s, "ana@example.org", "news")
	ben := preftest.Subscribed(t, s, "ben@example.org", "news")
	cleo := preftest.Subscribed(t, s, "cleo@example.org", "news")

	var record, wrapped []byte
	if err := s.DB.View(func(tx *bbolt.Tx) error {
		record = bytes.Clone(tx.Bucket([]byte("prefs.subscribers")).Get([]byte(ana)))
		wrapped = bytes.Clone(tx.Bucket([]byte("prefs.data_keys")).Get([]byte(ana)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(wrapped) < 9 || wrapped[0] != 'K' {
		t.Fatalf("Ana's data key is not wrapped under a key group: %x", wrapped)
	}
	group, epoch := binary.BigEndian.Uint32(wrapped[1:]), binary.BigEndian.Uint32(wrapped[5:])
	keyPath := preferences.KeyFilePath(s.Path)
	oldSlot := keySlot(t, keyPath, group, epoch)
	if oldSlot == nil {
		t.Fatalf("the key file has no KEK for group %d epoch %d", group, epoch)
	}

	if _, err := s.Erase(ctx, ana, "dpo"); err != nil {
		t.Fatalf("erase: %v", err)
	}
	if keySlot(t, keyPath, group, epoch) != nil {
		t.Errorf("group %d still has its KEK of epoch %d on disk", group, epoch)
	}
	if raw, _ := os.ReadFile(keyPath); bytes.Contains(raw, oldSlot[4:]) {
		t.Errorf("the key file still holds the old KEK's sealed bytes")
	}

	// The attacker's copies, put back, in a fresh process (nothing in memory).
	s.RawUpdate(t, func(tx *bbolt.Tx) error {
		if err := tx.Bucket([]byte("prefs.subscribers")).Put([]byte(ana), record); err != nil {
			return err
		}
		return tx.Bucket([]byte("prefs.data_keys")).Put([]byte(ana), wrapped)
	})
	if sub, err := s.Subscriber(ctx, ana); !errors.Is(err, preferences.ErrKeyDestroyed) {
		t.Errorf("Ana's kept copies open: %+v, %v; want ErrKeyDestroyed", sub, err)
	}
	for addr, id := range map[string]string{"ben@example.org": ben, "cleo@example.org": cleo} {
		if sub, err := s.Subscriber(ctx, id); err != nil || sub.Email != addr {
			t.Errorf("%s after the erasure of a member of the group: %q, %v", addr, sub.Email, err)
		}
	}
}

// keySlot returns the slot of the key file at path that holds group's KEK of epoch,
// nil if none does.
func keySlot(tb testing.TB, path string, group, epoch uint32) []byte {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	for s := range 2 {
		off := 64 + int(group)*128 + s*64
		if off+64 > len(raw) {
			break
		}
		if slot := raw[off : off+64]; binary.BigEndian.Uint32(slot) == epoch {
			return bytes.Clone(slot)
		}
	}
	return nil
}

// Erasures while signups keep arriving in the same key groups, and backups taken
// meanwhile: after a restart, everyone kept reads, everyone erased does not, and each
// backup opens with its own key file. The KEK replacements race the signups that
// are given data keys in the group being replaced.
func TestErasuresRaceSignupsInTheirGroups(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCreateList(t, s, "news")
	eraser := preferences.NewEraser(s.Store, nil, nil)
	var mu sync.Mutex
	kept := map[string]string{} // id -> address
	all := map[string]string{}
	var erased []string
	var wg, signups sync.WaitGroup
	var signedUp atomic.Bool
	for w := range 4 {
		signups.Go(func() {
			for i := range 150 {
				addr := fmt.Sprintf("w%d-%d@example.org", w, i)
				var rec preftest.Recorder // not preftest.Signup: t.Fatal ends only its own goroutine
				err := s.Signup(ctx, preftest.SignupInput(addr, "news"), rec.Enqueue)
				if calls := rec.Calls(); err != nil || len(calls) != 1 {
					t.Errorf("signup %s: %v, %d confirmations queued", addr, err, len(calls))
					return
				}
				req := rec.Calls()[0]
				mu.Lock()
				kept[req.Subscriber], all[req.Subscriber] = addr, addr
				mu.Unlock()
			}
		})
	}
	wg.Go(func() { signups.Wait(); signedUp.Store(true) })
	var backups []string
	backupDir := t.TempDir() // here: TempDir may call t.Fatal, which is for the test's goroutine
	wg.Go(func() {
		for i := 0; i < 60; {
			mu.Lock()
			var victim string
			for id := range kept {
				victim = id
				break
			}
			if victim != "" {
				delete(kept, victim)
				erased = append(erased, victim)
			}
			mu.Unlock()
			if victim == "" {
				if signedUp.Load() {
					return
				}
				runtime.Gosched() // nobody signed up yet
				continue
			}
			i++
			if _, err := eraser.Erase(ctx, victim, "dpo"); err != nil {
				t.Errorf("erase %s: %v", victim, err)
				return
			}
			if i%20 == 1 {
				path, err := takeBackup(s, filepath.Join(backupDir, fmt.Sprintf("backup-%d.db", i)))
				if err != nil {
					t.Errorf("backup: %v", err)
					return
				}
				backups = append(backups, path)
			}
		}
	})
	wg.Wait()
	if len(erased) == 0 {
		t.Fatal("nobody was erased")
	}
	s.Reopen(t)
	for id, addr := range kept {
		if sub, err := s.Subscriber(ctx, id); err != nil || sub.Email != addr {
			t.Fatalf("%s after the erasures: %q, %v", addr, sub.Email, err)
		}
	}
	for _, id := range erased {
		if sub, err := s.Subscriber(ctx, id); err != nil || sub.Email != "" || sub.Status != preferences.StatusErased {
			t.Errorf("erased %s reads %+v, %v", id, sub, err)
		}
	}
	// Each backup: every subscriber it holds and had not erased opens with its keys.
	for _, b := range backups {
		restored := preftest.NewStoreWith(t, b, testSecret)
		readable := 0
		for id, addr := range all {
			sub, err := restored.Subscriber(ctx, id)
			switch {
			case errors.Is(err, preferences.ErrNotFound):
				continue // joined after the backup
			case err == nil && sub.Status == preferences.StatusErased:
				continue
			case err != nil || sub.Email != addr:
				t.Fatalf("backup %s: %s reads %q, %v", b, addr, sub.Email, err)
			}
			readable++
		}
		if readable == 0 {
			t.Errorf("backup %s: nobody readable", b)
		}
		restored.CloseDB(t)
	}
}

// takeBackup writes a snapshot of s and extracts it to a data file of its own at path.
// It returns its error: it runs beside the test's goroutine.
func takeBackup(s *preftest.Store, path string) (string, error) {
	snap, err := s.Snapshot()
	if err != nil {
		return "", err
	}
	defer snap.Close()
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		return "", err
	}
	return path, preferences.ExtractBackup(&buf, path, preferences.KeyFilePath(path))
}

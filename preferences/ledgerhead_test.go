package preferences_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
)

func mustHead(tb testing.TB, s *testStore) preferences.SignedHead {
	tb.Helper()
	h, err := s.LedgerHead(context.Background())
	if err != nil {
		tb.Fatalf("LedgerHead: %v", err)
	}
	return h
}

func verifyHead(tb testing.TB, s *testStore, h preferences.SignedHead) preferences.VerifyResult {
	tb.Helper()
	res, err := s.VerifyLedgerHead(context.Background(), h)
	if err != nil {
		tb.Fatalf("VerifyLedgerHead: %v", err)
	}
	return res
}

// A head saved elsewhere catches what the chain alone cannot: the newest events cut
// off, and the whole chain rewritten from some event on.
func TestSavedHeadDetectsCutOffAndRewrite(t *testing.T) {
	f := newLedgerFixture(t)
	saved := mustHead(t, f.s)
	if saved.Seq != f.wantEvents || saved.Head != mustVerify(t, f.s).Head {
		t.Fatalf("head = %+v, want seq %d and the verified head", saved, f.wantEvents)
	}
	if err := f.s.CheckHeadSignature(saved, true); err != nil {
		t.Fatalf("fresh head: %v", err)
	}
	// Later events do not disturb an older head.
	mustSignup(t, f.s, signupInput("dan@example.org", "news"))
	if res := verifyHead(t, f.s, saved); !res.OK || res.Events != f.wantEvents+1 {
		t.Fatalf("after one more event: %+v", res)
	}

	t.Run("cut off", func(t *testing.T) {
		f := newLedgerFixture(t)
		saved := mustHead(t, f.s)
		f.s.RawUpdate(t, func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte(ledgerBucket)).Delete(seqKey(f.wantEvents))
		})
		if res := mustVerify(t, f.s); !res.OK {
			t.Fatalf("the chain alone should still verify: %+v", res)
		}
		res := verifyHead(t, f.s, saved)
		if res.OK || res.FirstBadSeq != f.wantEvents || !strings.Contains(res.Reason, "cut off") {
			t.Fatalf("VerifyLedgerHead after the last event was cut off = %+v", res)
		}
	})
	t.Run("rewritten and re-chained", func(t *testing.T) {
		f := newLedgerFixture(t)
		saved := mustHead(t, f.s)
		f.s.RawUpdate(t, func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte(ledgerBucket))
			v := get(t, b, 3)
			v[len(v)-2] ^= 1 // a byte of event 3's body
			rehash(3, v)
			put(t, b, 3, v)
			for seq := uint64(4); seq <= f.wantEvents; seq++ {
				prev := get(t, b, seq-1)
				w := get(t, b, seq)
				copy(w[:32], prev[32:64])
				rehash(seq, w)
				put(t, b, seq, w)
			}
			return nil
		})
		if res := mustVerify(t, f.s); !res.OK {
			t.Fatalf("the re-chained ledger should verify alone: %+v", res)
		}
		res := verifyHead(t, f.s, saved)
		if res.OK || res.FirstBadSeq != f.wantEvents || !strings.Contains(res.Reason, "rewritten") {
			t.Fatalf("VerifyLedgerHead after a rewrite = %+v", res)
		}
	})
}

func TestHeadSignature(t *testing.T) {
	f := newLedgerFixture(t)
	saved := mustHead(t, f.s)
	forged := saved
	forged.Seq--
	if err := f.s.CheckHeadSignature(forged, false); !errors.Is(err, preferences.ErrHeadSignature) {
		t.Errorf("a head with its seq changed: %v", err)
	}
	other := newStoreWith(t, t.TempDir()+"/other.db", []byte("another-installation-secret-0123456789"))
	theirs := mustHead(t, other)
	if err := f.s.CheckHeadSignature(theirs, false); err != nil {
		t.Errorf("another installation's head is well signed by its own key: %v", err)
	}
	if err := f.s.CheckHeadSignature(theirs, true); !errors.Is(err, preferences.ErrHeadSignature) {
		t.Errorf("another installation's key accepted as ours: %v", err)
	}
}

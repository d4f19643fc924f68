package preferences

import (
	"bytes"
	"context"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// ErasureReceipt proves an erasure: when, and the ledger event that records it.
type ErasureReceipt struct {
	Subscriber string    `json:"subscriber"`
	ErasedAt   time.Time `json:"erased_at"`
	LedgerSeq  uint64    `json:"ledger_seq"`
}

// Errors of erasure.
var (
	// ErrErased is returned when erasing a subscriber whose erasure is complete.
	ErrErased = errors.New("already erased")
	// ErrErasureIncomplete: the erasure is committed (the data key is gone and the
	// address suppressed) but a step after it failed; it is retried in the background
	// and by asking again.
	ErrErasureIncomplete = errors.New("erasure recorded, but not every step is done yet")
)

// QueueDropper drops, in every queue, the waiting messages that concern a subscriber.
// The queues are not the consent book's; cmd passes the implementation.
type QueueDropper interface {
	DropQueued(ctx context.Context, subscriber string) error
}

// The steps of an erasure after its transaction, in order. Each is recorded in the
// erasure's transaction and crossed off when done, so an erasure interrupted anywhere
// (a crash, Redis down) is finished later.
const (
	stepJournal = "journal" // append the erasure to the erasure journal (WithErasureJournal)
	stepRekey   = "rekey"   // replace the KEK the data key was wrapped under (keyFile.destroy)
	stepShred   = "shred"   // a data key of a store made before the key file: overwrite its old copies in the data file
	stepMirror  = "mirror"  // tell the withdrawal mirror (Redis): workers elsewhere skip the person
	stepQueues  = "queues"  // drop the person's waiting messages in every queue
)

var erasureSteps = []string{stepJournal, stepRekey, stepMirror, stepQueues}

// erasureRecord is an erasure whose steps are not all done.
type erasureRecord struct {
	Receipt ErasureReceipt `json:"receipt"`
	Steps   []string       `json:"steps"`
	// KeyGroup and KeyEpoch name the KEK the destroyed data key was wrapped under,
	// until stepRekey has replaced it.
	KeyGroup uint32 `json:"key_group,omitempty"`
	KeyEpoch uint32 `json:"key_epoch,omitempty"`
	// Key is a legacy destroyed wrapped data key (no key group), sealed under a key of
	// its own, kept until stepShred has overwritten its old copies: stored as it was,
	// shredding would find it here.
	Key []byte `json:"key,omitempty"`
	// Suppressed is the address's keyed hash, for the journal: what a restore needs to
	// keep the address suppressed when the backup predates the person.
	Suppressed []byte `json:"suppressed,omitempty"`
	Tries      int    `json:"tries,omitempty"`
	Error      string `json:"error,omitempty"`
}

// eraseTx erases rec in tx: subscriptions end, the data key, the activity and the
// lookup entry go, the address's keyed hash joins the suppression list, the personal
// fields are cleared, an erased event without personal data is written, and the steps
// still to do are recorded. A restricted subscriber is refused (ErrStatus).
func (s *Store) eraseTx(tx *bbolt.Tx, now time.Time, rec *subRecord, ev eventInput) (ErasureReceipt, error) {
	if rec.Status == StatusErased {
		return ErasureReceipt{}, fmt.Errorf("subscriber %s: %w", rec.ID, ErrErased)
	}
	if !Permitted(rec.Status, TErase) {
		return ErasureReceipt{}, fmt.Errorf("subscriber %s is %s: %w", rec.ID, rec.Status, ErrStatus)
	}
	wrapped := bytes.Clone(bucket(tx, bucketDataKeys).Get([]byte(rec.ID)))
	if err := bucket(tx, bucketDataKeys).Delete([]byte(rec.ID)); err != nil {
		return ErasureReceipt{}, err
	}
	group, epoch, grouped := wrappedKeyGroup(wrapped)
	if grouped {
		if err := bucket(tx, bucketKeyGroups).Delete(keyGroupKey(group, rec.ID)); err != nil {
			return ErasureReceipt{}, err
		}
	}
	if err := bucket(tx, bucketActivity).Delete([]byte(rec.ID)); err != nil {
		return ErasureReceipt{}, err
	}
	if err := bucket(tx, bucketSoftBounces).Delete([]byte(rec.ID)); err != nil {
		return ErasureReceipt{}, err
	}
	if len(rec.Index) > 0 {
		idx := tx.Bucket(bucketEmailIndex)
		if string(idx.Get(rec.Index)) == rec.ID {
			if err := idx.Delete(rec.Index); err != nil {
				return ErasureReceipt{}, err
			}
		}
		// Only the keyed hash stays, so that an old CSV cannot bring the person back
		// without fresh proof of consent.
		stamp, _ := now.MarshalBinary()
		if err := bucket(tx, bucketSuppressed).Put(rec.Index, stamp); err != nil {
			return ErasureReceipt{}, err
		}
	}
	suppressed := rec.Index
	rec.Index, rec.Email, rec.Name, rec.Attrs, rec.Tracking = nil, nil, nil, nil, false
	done, err := s.apply(tx, now, rec, change{T: TErase, Event: ev, LogScope: true, LogAlways: true})
	if err != nil {
		return ErasureReceipt{}, err
	}
	rc := ErasureReceipt{Subscriber: rec.ID, ErasedAt: now, LedgerSeq: done.Seq}
	er := erasureRecord{Receipt: rc, Steps: slices.Clone(erasureSteps), Suppressed: suppressed}
	switch {
	case grouped:
		er.KeyGroup, er.KeyEpoch = group, epoch
	case len(wrapped) > 0:
		er.Steps[slices.Index(er.Steps, stepRekey)] = stepShred
		er.Key = seal(s.keys.erasure, wrapped, []byte(rec.ID))
	default:
		er.Steps = slices.DeleteFunc(er.Steps, func(x string) bool { return x == stepRekey })
	}
	return rc, putJSON(bucket(tx, bucketErasures), []byte(rec.ID), er)
}

// Eraser is the one erasure (GDPR art. 17) of the API, the preference centre and
// retention. Each erasure commits in one transaction, then does its steps: replace the
// KEK of the data key's group, tell the withdrawal mirror, drop queued messages. A
// step that fails is retried by Run and by asking again, until every one is done.
type Eraser struct {
	store  *Store
	queues QueueDropper
	log    *slog.Logger
	// finishing serialises finish: a request and the background retry may meet on
	// one erasure, and each step's record is read, then rewritten.
	finishing sync.Mutex
}

// NewEraser returns the erasure over store; queues may be nil (no queue to drop from).
func NewEraser(store *Store, queues QueueDropper, log *slog.Logger) *Eraser {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Eraser{store: store, queues: queues, log: log}
}

// Erase makes a subscriber's personal data unrecoverable: their data key is destroyed
// and the KEK that wrapped it replaced, so that no old copy of it opens, which leaves
// every sealed field (address, name, attributes, the IP addresses and user agents in
// the ledger) unreadable while the ledger still verifies; their lookup entry goes and
// the address's keyed hash is kept in a suppression list (an import then needs proof
// of consent given after the erasure; a double opt-in always brings the address
// back); every subscription ends;
// the withdrawal is mirrored and queued messages are dropped. An erased event without
// personal data is the receipt.
//
// When a step after the commit fails, Erase returns the receipt and an error wrapping
// ErrErasureIncomplete. Erasing again finishes the steps and returns the same receipt;
// once every step is done, erasing again is ErrErased.
func (e *Eraser) Erase(ctx context.Context, subscriber, actor string) (ErasureReceipt, error) {
	s := e.store
	var rc ErasureReceipt
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		rec, err := loadRecord(tx, subscriber)
		if err != nil {
			return err
		}
		if rec.Status == StatusErased {
			var er erasureRecord
			if err := getJSON(bucket(tx, bucketErasures), []byte(rec.ID), &er); err == nil {
				rc = er.Receipt // not finished: this request finishes it
				return nil
			}
		}
		rc, err = s.eraseTx(tx, s.now().UTC(), rec, eventInput{Type: EventErased, Actor: actor})
		return err
	})
	if err != nil {
		return rc, err
	}
	if err := e.finish(ctx, subscriber); err != nil {
		return rc, fmt.Errorf("%w: %w", ErrErasureIncomplete, err)
	}
	return rc, nil
}

// finish does the steps still recorded for subscriber's erasure, crossing each off as
// it is done.
func (e *Eraser) finish(ctx context.Context, subscriber string) error {
	e.finishing.Lock()
	defer e.finishing.Unlock()
	s := e.store
	for {
		var er erasureRecord
		err := s.db.View(func(tx *bbolt.Tx) error {
			return getJSON(bucket(tx, bucketErasures), []byte(subscriber), &er)
		})
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(er.Steps) == 0 {
			return s.commit.update(ctx, func(tx *bbolt.Tx) error {
				return bucket(tx, bucketErasures).Delete([]byte(subscriber))
			})
		}
		step := er.Steps[0]
		if err := e.step(ctx, subscriber, step, &er); err != nil {
			serr := s.commit.update(ctx, func(tx *bbolt.Tx) error {
				er.Tries++
				er.Error = fmt.Sprintf("%s: %v", step, err)
				return putJSON(bucket(tx, bucketErasures), []byte(subscriber), er)
			})
			return errors.Join(fmt.Errorf("erasure step %s: %w", step, err), serr)
		}
		sealedKey := er.Key
		err = s.commit.update(ctx, func(tx *bbolt.Tx) error {
			er.Steps = slices.DeleteFunc(slices.Clone(er.Steps), func(x string) bool { return x == step })
			if step == stepShred {
				er.Key = nil
			}
			er.Error = ""
			return putJSON(bucket(tx, bucketErasures), []byte(subscriber), er)
		})
		if err != nil {
			return err
		}
		if step == stepShred && len(sealedKey) >= 16 {
			// The sealed copy left in the record's freed page opens only with the
			// root secret, like the wrapped key itself; overwrite it too.
			if _, err := s.shred(sealedKey); err != nil {
				e.log.Warn("erasure: overwriting the sealed key copy failed", "subscriber", subscriber, "err", err)
			}
		}
	}
}

func (e *Eraser) step(ctx context.Context, subscriber, step string, er *erasureRecord) error {
	s := e.store
	switch step {
	case stepJournal:
		if s.journal == nil {
			return nil
		}
		return s.journal.Append(JournalEntry{Subscriber: subscriber, Suppressed: er.Suppressed,
			ErasedAt: er.Receipt.ErasedAt, LedgerSeq: er.Receipt.LedgerSeq})
	case stepRekey:
		return s.keys.file.destroy(er.KeyGroup, er.KeyEpoch, func(group, to uint32, kek cipher.AEAD) error {
			return s.rewrapGroup(ctx, group, to, kek)
		})
	case stepShred:
		wrapped, err := open(s.keys.erasure, er.Key, []byte(subscriber))
		if err != nil {
			return fmt.Errorf("open the kept key: %w", err)
		}
		_, err = s.shred(wrapped)
		return err
	case stepMirror:
		if s.mirror == nil {
			return nil
		}
		return s.mirror.Withdraw(ctx, subscriber, nil)
	case stepQueues:
		if e.queues == nil {
			return nil
		}
		return e.queues.DropQueued(ctx, subscriber)
	}
	return fmt.Errorf("unknown erasure step %q", step)
}

// Pending returns the subscribers whose erasure has steps left.
func (e *Eraser) Pending(ctx context.Context) ([]string, error) {
	var ids []string
	err := e.store.db.View(func(tx *bbolt.Tx) error {
		return bucket(tx, bucketErasures).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return ids, err
}

// ErasureRetry is how often Run retries the erasures with steps left.
const ErasureRetry = 10 * time.Second

// Run finishes the erasures with steps left, at once and then every ErasureRetry,
// until ctx ends.
func (e *Eraser) Run(ctx context.Context) error {
	t := time.NewTicker(ErasureRetry)
	defer t.Stop()
	for {
		e.FinishPending(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// FinishPending tries once to finish every erasure with steps left and reports how
// many are still unfinished.
func (e *Eraser) FinishPending(ctx context.Context) int {
	ids, err := e.Pending(ctx)
	if err != nil {
		e.log.Error("erasure: reading the unfinished erasures", "err", err)
		return -1
	}
	left := 0
	for _, id := range ids {
		if err := e.finish(ctx, id); err != nil {
			left++
			if ctx.Err() == nil {
				e.log.Warn("erasure not finished yet; retrying", "subscriber", id, "err", err)
			}
		}
	}
	return left
}

// erasureAEAD seals the kept copy of a destroyed data key.
func erasureAEAD(secret []byte) (cipher.AEAD, error) {
	return newAEAD(DeriveKey(secret, "erasure-steps"))
}

// rewrapGroup wraps every data key of group under the KEK to (epoch to), in one
// transaction: the step of keyFile.destroy between a group's new KEK and the
// overwriting of the old one.
func (s *Store) rewrapGroup(ctx context.Context, group, to uint32, kek cipher.AEAD) error {
	return s.commit.update(ctx, func(tx *bbolt.Tx) error {
		keys := bucket(tx, bucketDataKeys)
		prefix := binary.BigEndian.AppendUint32(nil, group)
		c := tx.Bucket(bucketKeyGroups).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := string(k[len(prefix):])
			wrapped := keys.Get([]byte(id))
			g, epoch, ok := wrappedKeyGroup(wrapped)
			if !ok || g != group || epoch == to {
				continue
			}
			raw, err := s.keys.unwrapRaw(nil, id, wrapped)
			if err != nil {
				return err
			}
			if err := keys.Put([]byte(id), wrapUnder(kek, group, to, raw, id)); err != nil {
				return err
			}
		}
		return nil
	})
}

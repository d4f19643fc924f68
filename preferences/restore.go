package preferences

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"go.etcd.io/bbolt"
)

// Snapshot is a consistent copy of the whole data file (the consent book and all that
// shares its file: the embedded queue, the campaigns) as of one read transaction,
// taken while the service runs. Close it once written: until then the file cannot
// give back the pages it holds.
type Snapshot struct{ tx *bbolt.Tx }

// Snapshot begins a snapshot of the data file.
func (s *Store) Snapshot() (*Snapshot, error) {
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return &Snapshot{tx: tx}, nil
}

// Size is the snapshot's size in bytes.
func (sn *Snapshot) Size() int64 { return sn.tx.Size() }

// WriteTo writes the snapshot, a bbolt file that can be opened as it is.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) { return sn.tx.WriteTo(w) }

// Close ends the snapshot's transaction.
func (sn *Snapshot) Close() error { return sn.tx.Rollback() }

// ReplayResult counts what ReplayErasures did.
type ReplayResult struct {
	Considered int `json:"considered"` // journal entries after the backup's last event
	Erased     int `json:"erased"`     // people the backup held and the journal says were erased since
	Suppressed int `json:"suppressed"` // addresses of people erased who joined after the backup: suppressed
	Already    int `json:"already"`    // erased in the backup already
}

// ReplayErasures applies to a restored store every erasure of the journal that
// happened after the backup was taken: those with a ledger sequence number past the
// backup's last event (earlier ones are in the backup's ledger). A person the backup
// holds is erased again, with an erased event naming actor; one the backup predates
// has their address's keyed hash put on the suppression list. A restricted person is
// unrestricted first (the erasure was made after the restriction ended). Each erasure
// then finishes its steps, the journal's included, so the journal stays complete.
func (e *Eraser) ReplayErasures(ctx context.Context, entries []JournalEntry, actor string) (ReplayResult, error) {
	s := e.store
	var res ReplayResult
	var head uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
		if k, _ := bucket(tx, bucketLedger).Cursor().Last(); len(k) == 8 {
			head = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	seen := map[string]bool{}
	for _, en := range entries {
		if en.LedgerSeq <= head || seen[en.Subscriber] {
			continue
		}
		seen[en.Subscriber] = true
		res.Considered++
		var erased, suppressed, already bool // set by the last run of the transaction
		err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
			erased, suppressed, already = false, false, false
			now := s.now().UTC()
			rec, err := loadRecord(tx, en.Subscriber)
			if errors.Is(err, ErrNotFound) {
				if len(en.Suppressed) == 0 || bucket(tx, bucketSuppressed).Get(en.Suppressed) != nil {
					return nil
				}
				suppressed = true
				stamp, _ := en.ErasedAt.MarshalBinary()
				return bucket(tx, bucketSuppressed).Put(en.Suppressed, stamp)
			}
			if err != nil {
				return err
			}
			if rec.Status == StatusErased {
				already = true
				return nil
			}
			details := map[string]string{"replayed": "erasure journal", "journal_seq": strconv.FormatUint(en.LedgerSeq, 10)}
			if rec.Status == StatusRestricted {
				if _, err := s.apply(tx, now, rec, change{T: TUnrestrict, Lists: []string{},
					Event: eventInput{Type: EventUnrestricted, Actor: actor, Details: details}}); err != nil {
					return err
				}
			}
			if _, err := s.eraseTx(tx, now, rec, eventInput{Type: EventErased, Actor: actor, Details: details}); err != nil {
				return err
			}
			erased = true
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("replay the erasure of %s: %w", en.Subscriber, err)
		}
		switch {
		case suppressed:
			res.Suppressed++
		case already:
			res.Already++
		case erased:
			res.Erased++
			if err := e.finish(ctx, en.Subscriber); err != nil {
				return res, fmt.Errorf("finish the replayed erasure of %s: %w", en.Subscriber, err)
			}
		}
	}
	return res, nil
}

package preferences

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"go.etcd.io/bbolt"
)

// Snapshot is a consistent copy of the whole data file (the consent book and all that
// shares its file: the embedded queue, the campaigns) as of one read transaction,
// taken while the service runs, with the key file as it was then. Close it once
// written: until then the data file cannot give back the pages it holds.
type Snapshot struct {
	tx   *bbolt.Tx
	keys []byte
}

// Backup entries: a backup is a tar archive of the data file and its key file.
const (
	BackupDataEntry = "consentmail.db"
	BackupKeysEntry = "consentmail.db.keys"
)

// Snapshot begins a snapshot of the data file and copies the key file, with no KEK
// replaced in between: every data key the snapshot holds opens with the copy.
func (s *Store) Snapshot() (*Snapshot, error) {
	var tx *bbolt.Tx
	keys, err := s.keys.file.snapshot(func() error {
		var err error
		tx, err = s.db.Begin(false)
		return err
	})
	if err != nil {
		if tx != nil {
			tx.Rollback()
		}
		return nil, err
	}
	return &Snapshot{tx: tx, keys: keys}, nil
}

// Size is the size in bytes of what WriteTo writes.
func (sn *Snapshot) Size() int64 {
	return tarEntrySize(sn.tx.Size()) + tarEntrySize(int64(len(sn.keys))) + 2*tarBlock
}

const tarBlock = 512

func tarEntrySize(n int64) int64 { return tarBlock + (n+tarBlock-1)/tarBlock*tarBlock }

// WriteTo writes the snapshot: a tar archive (GNU format, one header per entry) of
// the data file (BackupDataEntry, a bbolt file that opens as it is) and the key file
// (BackupKeysEntry).
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	err := WriteBackup(cw, sn.tx.Size(), func(w io.Writer) error {
		_, err := sn.tx.WriteTo(w)
		return err
	}, sn.keys)
	return cw.n, err
}

// WriteBackup writes a backup archive: the data file of size bytes that data writes,
// then the key file's bytes.
func WriteBackup(w io.Writer, size int64, data func(io.Writer) error, keys []byte) error {
	tw := tar.NewWriter(w)
	now := time.Now().UTC().Truncate(time.Second)
	if err := tw.WriteHeader(&tar.Header{Name: BackupDataEntry, Size: size, Mode: 0o600, ModTime: now, Format: tar.FormatGNU}); err != nil {
		return err
	}
	if err := data(tw); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: BackupKeysEntry, Size: int64(len(keys)), Mode: 0o600, ModTime: now, Format: tar.FormatGNU}); err != nil {
		return err
	}
	if _, err := tw.Write(keys); err != nil {
		return err
	}
	return tw.Close()
}

// ExtractBackup writes the data file and the key file of the backup archive r to
// dataPath and keysPath (created 0600, synced).
func ExtractBackup(r io.Reader, dataPath, keysPath string) error {
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("not a consentmail backup: %w", err)
		}
		var dst string
		switch h.Name {
		case BackupDataEntry:
			dst = dataPath
		case BackupKeysEntry:
			dst = keysPath
		default:
			return fmt.Errorf("not a consentmail backup: unexpected entry %q", h.Name)
		}
		if seen[h.Name] {
			return fmt.Errorf("not a consentmail backup: %q twice", h.Name)
		}
		seen[h.Name] = true
		if err := writeSynced(dst, tr); err != nil {
			return err
		}
	}
	if !seen[BackupDataEntry] || !seen[BackupKeysEntry] {
		return fmt.Errorf("not a consentmail backup: it needs %s and %s", BackupDataEntry, BackupKeysEntry)
	}
	return nil
}

func writeSynced(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

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

package preferences

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"
)

// ErasureJournal is the record of erasures kept apart from the store (beside it by
// default, or on another disk), so that restoring a backup never brings an erased
// person back: ReplayErasures applies again every erasure the backup predates. It
// holds no personal data: a subscriber's random id, the keyed hash of their address
// (as the suppression list keeps it), the erasure's time and ledger sequence number.
//
// Each erasure appends one line of JSON and syncs it to disk before the erasure is
// finished (a step of the erasure, retried until done, so an erasure that answered
// is in the journal). A line may appear twice after a crash; replaying is idempotent.
type ErasureJournal struct {
	path string
	mu   sync.Mutex
}

// JournalEntry is one erasure in the journal.
type JournalEntry struct {
	Subscriber string    `json:"subscriber"`
	Suppressed []byte    `json:"suppressed,omitempty"` // the address's keyed hash (the suppression list's key)
	ErasedAt   time.Time `json:"erased_at"`
	LedgerSeq  uint64    `json:"ledger_seq"` // the erased event's sequence number
}

// OpenErasureJournal returns the journal at path, creating the file (mode 0600) if
// needed, so that a path that cannot be written fails at start, not at an erasure.
func OpenErasureJournal(path string) (*ErasureJournal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("erasure journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("erasure journal: %w", err)
	}
	return &ErasureJournal{path: path}, nil
}

// Path is the journal's file.
func (j *ErasureJournal) Path() string { return j.path }

// Append writes e and syncs it to disk.
func (j *ErasureJournal) Append(e JournalEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("erasure journal: %w", err)
	}
	_, werr := f.Write(append(line, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("erasure journal: %w", err)
	}
	return nil
}

// MaxJournalLine bounds one line of the journal (an entry is about 200 bytes).
const MaxJournalLine = 4096

// ReadErasureJournal reads every entry of the journal at path; a missing file is an
// empty journal. A torn last line (a crash mid-append) is ignored; any other line
// that does not parse is an error, naming it.
func ReadErasureJournal(path string) ([]JournalEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("erasure journal: %w", err)
	}
	defer f.Close()
	var out []JournalEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, MaxJournalLine), MaxJournalLine)
	var bad error
	for n := 1; sc.Scan(); n++ {
		if bad != nil {
			return nil, bad // a bad line followed by more: not a torn end
		}
		var e JournalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Subscriber == "" {
			bad = fmt.Errorf("erasure journal %s: line %d does not parse", path, n)
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("erasure journal: %w", err)
	}
	return out, nil
}

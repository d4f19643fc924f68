package preferences

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// ImportRow is one validated row of an import: a person and, when the company holds
// it, the proof of an earlier consent (when and where it was given).
type ImportRow struct {
	Email      string // normalised, as for SignupInput
	IndexKey   string
	Name       string
	Locale     string
	Attributes json.RawMessage
	// ConsentedAt and ConsentSource are the proof; without both the row becomes
	// pending. ConsentIP is kept, sealed, when given.
	ConsentedAt   time.Time
	ConsentSource string
	ConsentIP     string
}

// HasProof reports whether the row carries a proof of consent.
func (r *ImportRow) HasProof() bool { return !r.ConsentedAt.IsZero() && r.ConsentSource != "" }

// ImportResult counts what an import did.
type ImportResult struct {
	Imported int // confirmed with their proof
	Pending  int // without proof: pending, a confirmation queued when asked for
	// Rejected are the rows the consent rules refuse, by index in rows.
	Rejected []ImportRejection
}

// ImportRejection is a row the consent rules refuse.
type ImportRejection struct {
	Row    int
	Reason string
}

// Reasons of import rejections.
const (
	// RejectSuppressed: the address was erased and the row has no proof of consent
	// given after the erasure.
	RejectSuppressed = "the address was erased; only proof of consent given after the erasure, or a double opt-in, brings it back"
	// RejectWithdrawn: the person withdrew consent to the list after the row's proof
	// (or the row has none).
	RejectWithdrawn = "consent to this list was withdrawn after the proof given (or there is none); only a new consent brings the person back"
	// RejectRestricted: the subscriber's processing is restricted (GDPR art. 18).
	RejectRestricted = "the subscriber's processing is restricted; nothing changes until it is lifted"
)

// MaxImportBatch is the most rows one Import call writes (one transaction).
const MaxImportBatch = 1000

// Import adds rows to list in one transaction. A row with proof becomes confirmed
// with an imported event carrying the proof; a row without becomes pending and, when
// enqueue is not nil, is sent a confirmation as after a signup (same 10-minute rule).
// A person already confirmed on the list is left as is. An existing subscriber's
// profile is never changed. The list need not be public.
func (s *Store) Import(ctx context.Context, list, actor string, rows []ImportRow, enqueue EnqueueTx) (ImportResult, error) {
	if len(rows) > MaxImportBatch {
		return ImportResult{}, fmt.Errorf("import: %d rows in one batch, at most %d", len(rows), MaxImportBatch)
	}
	l, ok := s.cache.get(list)
	if !ok {
		return ImportResult{}, fmt.Errorf("list %s: %w", list, ErrNotFound)
	}
	indexes := make([][]byte, len(rows))
	for i := range rows {
		indexes[i] = s.keys.blindIndex(rows[i].IndexKey)
	}
	var res ImportResult
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		res = ImportResult{}
		now := s.now().UTC()
		for i := range rows {
			r := &rows[i]
			// An address erased on request stays suppressed, whoever signed it up since,
			// until a double opt-in confirms it: an import needs proof of consent given
			// after the erasure.
			if stamp := bucket(tx, bucketSuppressed).Get(indexes[i]); stamp != nil {
				var erased time.Time
				if err := erased.UnmarshalBinary(stamp); err != nil || !r.HasProof() || !r.ConsentedAt.After(erased) {
					res.Rejected = append(res.Rejected, ImportRejection{Row: i, Reason: RejectSuppressed})
					continue
				}
			}
			rec, dk, err := s.findOrCreate(tx, indexes[i],
				SignupInput{Email: r.Email, Name: r.Name, Locale: r.Locale, Attributes: r.Attributes}, now)
			if err != nil {
				return err
			}
			details := map[string]string{"proof": "none"}
			ch := change{T: TImport, Lists: []string{l.ID}, Locale: r.Locale, DK: dk,
				Event: eventInput{Type: EventImported, Actor: actor, Details: details}}
			if r.HasProof() {
				ch.T, ch.ProofAt, ch.Event.IP = TImportProof, r.ConsentedAt, r.ConsentIP
				details = map[string]string{"consented_at": r.ConsentedAt.UTC().Format(time.RFC3339), "consent_source": r.ConsentSource}
				ch.Event.Details = details
			}
			// The text the row's language reads: the row's proof says when and where
			// consent was given, the event pins which text it stands for.
			consentDetails(details, l, r.Locale)
			if enqueue != nil {
				ch.Optin = &optinRound{enqueue: enqueue, throttle: true}
			}
			done, err := s.apply(tx, now, rec, ch)
			if errors.Is(err, ErrStatus) {
				res.Rejected = append(res.Rejected, ImportRejection{Row: i, Reason: RejectRestricted})
				continue
			}
			if err != nil {
				return err
			}
			st := ""
			if x := rec.sub(l.ID); x != nil {
				st = x.Status
			}
			switch {
			case st == SubConfirmed:
				res.Imported++ // with its proof, or confirmed before
			case st == SubPending:
				res.Pending++
			case len(done.Skipped) > 0:
				res.Rejected = append(res.Rejected, ImportRejection{Row: i, Reason: RejectWithdrawn})
			}
		}
		return nil
	})
	return res, err
}

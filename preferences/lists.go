package preferences

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"

	"go.etcd.io/bbolt"
)

// DefaultRetentionDays is a list's retention when none is given (three years).
const DefaultRetentionDays = 1095

var listIDPattern = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// ValidListID reports whether id is a valid list slug.
func ValidListID(id string) bool { return listIDPattern.MatchString(id) }

// List is a mailing list and the consent people give to it.
type List struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Purpose        string    `json:"purpose"`
	ConsentText    string    `json:"consent_text"`
	ConsentVersion string    `json:"consent_version"`
	PrivacyURL     string    `json:"privacy_url"`
	Public         bool      `json:"public"`
	RetentionDays  int       `json:"retention_days"`
	From           string    `json:"from"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// ConsentText is one version of a list's consent text, kept for as long as the
// ledger may refer to it.
type ConsentText struct {
	Version   string    `json:"version"`
	List      string    `json:"list"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
}

// ConsentVersion returns the version of a consent text: the hex SHA-256 of the list id
// and the text, so a signup's ledger event pins exactly what was shown.
func ConsentVersion(list, text string) string {
	h := sha256.Sum256([]byte(list + "\x00" + text))
	return hex.EncodeToString(h[:16])
}

// CreateList stores a new list. It fails with ErrConflict if the id exists.
func (s *Store) CreateList(ctx context.Context, l List) (List, error) {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLists)
		if b.Get([]byte(l.ID)) != nil {
			return fmt.Errorf("list %s: %w", l.ID, ErrConflict)
		}
		now := s.now().UTC()
		l.CreatedAt, l.UpdatedAt = now, now
		if l.RetentionDays == 0 {
			l.RetentionDays = DefaultRetentionDays
		}
		return putList(tx, &l, now)
	})
	return l, err
}

// putList stores l, recording its consent text as a new version when it changed.
func putList(tx *bbolt.Tx, l *List, now time.Time) error {
	l.ConsentVersion = ConsentVersion(l.ID, l.ConsentText)
	texts := tx.Bucket(bucketConsentText)
	if texts.Get([]byte(l.ConsentVersion)) == nil {
		err := putJSON(texts, []byte(l.ConsentVersion), ConsentText{Version: l.ConsentVersion, List: l.ID, Text: l.ConsentText, CreatedAt: now})
		if err != nil {
			return err
		}
	}
	return putJSON(tx.Bucket(bucketLists), []byte(l.ID), l)
}

// List returns one list.
func (s *Store) List(ctx context.Context, id string) (List, error) {
	var l List
	err := s.db.View(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bucketLists), []byte(id), &l)
	})
	if err != nil {
		return List{}, fmt.Errorf("list %s: %w", id, err)
	}
	return l, nil
}

// Lists returns up to limit lists with ids after the cursor, and the next cursor.
func (s *Store) Lists(ctx context.Context, after string, limit int) ([]List, string, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	var out []List
	var next string
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLists).Cursor()
		k, v := c.First()
		if after != "" {
			k, v = c.Seek([]byte(after))
			if k != nil && bytes.Equal(k, []byte(after)) {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			if len(out) == limit {
				next = out[len(out)-1].ID
				return nil
			}
			var l List
			if err := decodeJSON(v, &l); err != nil {
				return err
			}
			out = append(out, l)
		}
		return nil
	})
	return out, next, err
}

// UpdateList applies change to a stored list and saves it; a changed consent text
// becomes a new version while past signups keep the version they saw.
func (s *Store) UpdateList(ctx context.Context, id string, change func(*List) error) (List, error) {
	var l List
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := getJSON(tx.Bucket(bucketLists), []byte(id), &l); err != nil {
			return fmt.Errorf("list %s: %w", id, err)
		}
		if err := change(&l); err != nil {
			return err
		}
		l.ID = id
		now := s.now().UTC()
		l.UpdatedAt = now
		return putList(tx, &l, now)
	})
	return l, err
}

// DeleteList removes a list. Subscribers keep their history in the ledger; their
// subscription to the list is dropped.
func (s *Store) DeleteList(ctx context.Context, id string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLists)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("list %s: %w", id, ErrNotFound)
		}
		return b.Delete([]byte(id))
	})
}

// ConsentTextVersion returns one stored version of a consent text.
func (s *Store) ConsentTextVersion(ctx context.Context, version string) (ConsentText, error) {
	var ct ConsentText
	err := s.db.View(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bucketConsentText), []byte(version), &ct)
	})
	return ct, err
}

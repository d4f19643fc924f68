package preferences

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
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
		if err := putList(tx, &l, now); err != nil {
			return err
		}
		tx.OnCommit(func() { s.cache.put(l) })
		return nil
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

// listCache keeps every list in memory: signups and mail read them on every request,
// and there are few lists. It is filled at start and changed only after a commit.
type listCache struct {
	mu    sync.RWMutex
	lists map[string]List
}

func (c *listCache) get(id string) (List, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	l, ok := c.lists[id]
	return l, ok
}

func (c *listCache) put(l List) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lists[l.ID] = l
}

// all returns every list in id order.
func (c *listCache) all() []List {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]List, 0, len(c.lists))
	for _, l := range c.lists {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b List) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (c *listCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.lists, id)
}

func (c *listCache) load(tx *bbolt.Tx) error {
	c.lists = map[string]List{}
	return tx.Bucket(bucketLists).ForEach(func(k, v []byte) error {
		var l List
		if err := decodeJSON(v, &l); err != nil {
			return fmt.Errorf("list %s: %w", k, err)
		}
		c.lists[l.ID] = l
		return nil
	})
}

// AllLists returns every list in id order, from memory (the store keeps them all).
func (s *Store) AllLists() []List { return s.cache.all() }

// List returns one list.
func (s *Store) List(ctx context.Context, id string) (List, error) {
	l, ok := s.cache.get(id)
	if !ok {
		return List{}, fmt.Errorf("list %s: %w", id, ErrNotFound)
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
		if err := putList(tx, &l, now); err != nil {
			return err
		}
		tx.OnCommit(func() { s.cache.put(l) })
		return nil
	})
	return l, err
}

// DeleteList removes a list and every subscription to it: a list later created with
// the same id starts with nobody, since consent was given for the old one's purpose.
// Each pending or confirmed subscriber gets an unsubscribed event (method api,
// reason list_deleted) naming actor.
func (s *Store) DeleteList(ctx context.Context, id, actor string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLists)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("list %s: %w", id, ErrNotFound)
		}
		now := s.now().UTC()
		members := bucket(tx, bucketMembers)
		prefix := []byte(id + "\x00")
		var keys [][]byte
		c := members.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			rec, err := loadRecord(tx, string(k[len(prefix):]))
			if errors.Is(err, ErrNotFound) {
				if err := members.Delete(k); err != nil {
					return err
				}
				continue
			} else if err != nil {
				return err
			}
			if _, err := s.apply(tx, now, rec, change{T: TListDeleted, Lists: []string{id},
				Event: eventInput{Type: EventUnsubscribed, Actor: actor,
					Details: map[string]string{"method": "api", "reason": "list_deleted"}}}); err != nil {
				return err
			}
		}
		tx.OnCommit(func() { s.cache.forget(id) })
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

package preferences

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
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
	ID             string `json:"id"`
	Name           string `json:"name"`
	Purpose        string `json:"purpose"`
	ConsentText    string `json:"consent_text"`
	ConsentVersion string `json:"consent_version"`
	PrivacyURL     string `json:"privacy_url"`
	Public         bool   `json:"public"`
	RetentionDays  int    `json:"retention_days"`
	From           string `json:"from"`
	// Translations are the list's name, purpose and consent text in other languages,
	// by locale (one of Locales); the base fields are the English text, shown to
	// whoever's language has none.
	Translations map[string]ListText `json:"translations,omitempty"`
	CreatedAt    time.Time           `json:"created_at"`
	UpdatedAt    time.Time           `json:"updated_at"`
}

// Locales are the languages a list's texts can be given in. The base fields of a
// list are in DefaultLocale.
var Locales = []string{"en", "fr"}

// DefaultLocale is the language of a list's base fields.
const DefaultLocale = "en"

// ListText is a list's name, purpose and consent text in one language.
// ConsentVersion is computed when the list is saved.
type ListText struct {
	Name           string `json:"name"`
	Purpose        string `json:"purpose"`
	ConsentText    string `json:"consent_text"`
	ConsentVersion string `json:"consent_version,omitempty"`
}

// In returns the list as a person reading locale (a language tag such as "fr" or
// "fr-CA"; "" for none) is shown it: name, purpose, consent text and its version in
// that language when the list has them, else the base fields. It also returns the
// locale of the consent text shown, which the ledger records with its version.
func (l List) In(locale string) (List, string) {
	lang, _, _ := strings.Cut(strings.ToLower(locale), "-")
	lang, _, _ = strings.Cut(lang, "_")
	t, ok := l.Translations[lang]
	if !ok || lang == "" {
		return l, DefaultLocale
	}
	l.Name, l.Purpose, l.ConsentText, l.ConsentVersion = t.Name, t.Purpose, t.ConsentText, t.ConsentVersion
	return l, lang
}

// consentDetails adds to a signup or imported event's details the version and the
// locale of l's consent text shown to a person reading locale.
func consentDetails(details map[string]string, l List, locale string) {
	shown, lang := l.In(locale)
	details["consent_version."+l.ID] = shown.ConsentVersion
	details["consent_locale."+l.ID] = lang
}

// ConsentText is one version of a list's consent text in one language, kept for as
// long as the ledger may refer to it: never deleted, not even with its list.
type ConsentText struct {
	Version   string    `json:"version"`
	List      string    `json:"list"`
	Locale    string    `json:"locale"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
}

// ConsentVersion returns the version of a list's base consent text: the hex SHA-256
// of the list id and the text, so a signup's ledger event pins exactly what was shown.
func ConsentVersion(list, text string) string {
	h := sha256.Sum256([]byte(list + "\x00" + text))
	return hex.EncodeToString(h[:16])
}

// TranslatedConsentVersion returns the version of a list's consent text translated
// into locale: the same text in two languages has two versions.
func TranslatedConsentVersion(list, locale, text string) string {
	return ConsentVersion(list, locale+"\x00"+text)
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

// putList stores l, recording each of its consent texts (base and translations) as a
// new version when it changed.
func putList(tx *bbolt.Tx, l *List, now time.Time) error {
	texts := tx.Bucket(bucketConsentText)
	keep := func(version, locale, text string) error {
		if texts.Get([]byte(version)) != nil {
			return nil
		}
		return putJSON(texts, []byte(version), ConsentText{Version: version, List: l.ID, Locale: locale, Text: text, CreatedAt: now})
	}
	l.ConsentVersion = ConsentVersion(l.ID, l.ConsentText)
	if err := keep(l.ConsentVersion, DefaultLocale, l.ConsentText); err != nil {
		return err
	}
	for _, loc := range slices.Sorted(maps.Keys(l.Translations)) {
		t := l.Translations[loc]
		t.ConsentVersion = TranslatedConsentVersion(l.ID, loc, t.ConsentText)
		l.Translations[loc] = t
		if err := keep(t.ConsentVersion, loc, t.ConsentText); err != nil {
			return err
		}
	}
	if len(l.Translations) == 0 {
		l.Translations = nil
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
				if err := setMembership(tx, now, id, string(k[len(prefix):]), string(members.Get(k)), SubNone); err != nil {
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
	if err != nil {
		return ct, fmt.Errorf("consent text %s: %w", version, err)
	}
	return ct.withLocale(), nil
}

// withLocale fills the locale of versions stored before lists had translations:
// they are base texts.
func (ct ConsentText) withLocale() ConsentText {
	if ct.Locale == "" {
		ct.Locale = DefaultLocale
	}
	return ct
}

// ConsentTexts returns every consent text a list has had, in every language, oldest
// first, also once the list is deleted (ErrNotFound: it never had one). A list
// created again with the same id adds to the same history.
func (s *Store) ConsentTexts(ctx context.Context, list string) ([]ConsentText, error) {
	var out []ConsentText
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketConsentText).ForEach(func(k, v []byte) error {
			var ct ConsentText
			if err := decodeJSON(v, &ct); err != nil {
				return fmt.Errorf("consent text %s: %w", k, err)
			}
			if ct.List == list {
				out = append(out, ct.withLocale())
			}
			return nil
		})
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("consent texts of list %s: %w", list, ErrNotFound)
	}
	slices.SortStableFunc(out, func(a, b ConsentText) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Locale, b.Locale)
	})
	return out, err
}

// Problems ValidateList finds in a list's fields.
const (
	ListBadID        = "id"        // not a slug: [a-z0-9-]{1,64}
	ListRequired     = "required"  // empty
	ListTooLong      = "too_long"  // longer than ListFieldMax of the field
	ListNUL          = "nul"       // contains a NUL byte
	ListOneLine      = "one_line"  // a name or From with a line break
	ListBadURL       = "url"       // the privacy link is not an http(s) URL
	ListBadRetention = "retention" // retention_days outside 1…36500
	ListBadLocale    = "locale"    // a translation in a language the pages do not have
)

// ListFieldMax is the longest each text field of a list may be, in bytes.
var ListFieldMax = map[string]int{"name": 200, "purpose": 2000, "consent_text": 10000, "privacy_url": 2000, "from": 320}

// ValidateList checks a list's fields, the one rule of the API and the admin app:
// it returns each field with a problem (translations as "translations.LANG.FIELD")
// and its problem, one of the List* codes; nil when the list is valid.
func ValidateList(l *List) map[string]string {
	bad := map[string]string{}
	if !ValidListID(l.ID) {
		bad["id"] = ListBadID
	}
	check := func(key, field, v string, required bool) {
		switch {
		case required && v == "":
			bad[key] = ListRequired
		case len(v) > ListFieldMax[field]:
			bad[key] = ListTooLong
		case strings.ContainsRune(v, 0):
			bad[key] = ListNUL
		}
	}
	texts := func(prefix, name, purpose, consent string) {
		check(prefix+"name", "name", name, true)
		check(prefix+"purpose", "purpose", purpose, true)
		check(prefix+"consent_text", "consent_text", consent, true)
		if _, ok := bad[prefix+"name"]; !ok && strings.ContainsAny(name, "\r\n") {
			bad[prefix+"name"] = ListOneLine
		}
	}
	texts("", l.Name, l.Purpose, l.ConsentText)
	for loc, t := range l.Translations {
		if !slices.Contains(Locales, loc) {
			bad["translations."+loc] = ListBadLocale
			continue
		}
		texts("translations."+loc+".", t.Name, t.Purpose, t.ConsentText)
	}
	check("privacy_url", "privacy_url", l.PrivacyURL, false)
	check("from", "from", l.From, false)
	if _, ok := bad["from"]; !ok && strings.ContainsAny(l.From, "\r\n") {
		bad["from"] = ListOneLine
	}
	if _, ok := bad["privacy_url"]; !ok && l.PrivacyURL != "" {
		if u, err := url.Parse(l.PrivacyURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad["privacy_url"] = ListBadURL
		}
	}
	if l.RetentionDays < 1 || l.RetentionDays > 36500 {
		bad["retention_days"] = ListBadRetention
	}
	if len(bad) == 0 {
		return nil
	}
	return bad
}

// Package campaigns keeps consentmail's campaign templates (contract §4.5) and serves
// their admin API.
//
// It promises that every stored template parses and executes: Store.Create and
// Store.Update check the subject, HTML and text with templates.ParseCampaign and store
// nothing when a part fails, so that sending never meets a template error — except
// one recipient's data taking a template over the limits of templates.ParseCampaign
// (work, value length, output), which fails that preview (422) or that recipient's
// message (failed), never the request or the worker. A preview
// renders a template for one subscriber (or sample data) exactly as a campaign would,
// the mandatory footer with its unsubscribe and preference links included.
//
// The package owns the bbolt bucket "campaigns.templates".
package campaigns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/templates"
)

// bucketTemplates holds one JSON Template per id.
var bucketTemplates = []byte("campaigns.templates")

// MaxNameBytes is the longest template name.
const MaxNameBytes = 200

// ErrNotFound is returned when no template has the id.
var ErrNotFound = errors.New("campaigns: template not found")

// FieldError is a template field that is not valid, other than its template parts,
// whose problems are *templates.TemplateError.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Reason }

// Template is a campaign template as stored and as the API shows it.
type Template struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Subject   string    `json:"subject"`
	HTML      string    `json:"html"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Store keeps campaign templates in the shared bbolt database.
type Store struct {
	db  *bbolt.DB
	now func() time.Time
}

// NewStore returns a Store over db, creating its bucket; now is the clock that stamps
// CreatedAt and UpdatedAt.
func NewStore(db *bbolt.DB, now func() time.Time) (*Store, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketTemplates, bucketCampaigns} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("campaigns: create bucket: %w", err)
	}
	return &Store{db: db, now: now}, nil
}

// validate returns a *FieldError or a *templates.TemplateError for a template that may
// not be stored.
func validate(t *Template) error {
	switch {
	case strings.TrimSpace(t.Name) == "":
		return &FieldError{Field: "name", Reason: "is required"}
	case len(t.Name) > MaxNameBytes:
		return &FieldError{Field: "name", Reason: "is longer than " + strconv.Itoa(MaxNameBytes) + " bytes"}
	case strings.ContainsAny(t.Name, "\r\n\x00"):
		return &FieldError{Field: "name", Reason: "must be one line"}
	}
	_, err := templates.ParseCampaign(t.Subject, t.HTML, t.Text)
	return err
}

func newID() string {
	var b [12]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return "tpl_" + hex.EncodeToString(b[:])
}

// Create validates and stores a new template, giving it an id and timestamps; the
// ID and times of t are ignored.
func (s *Store) Create(ctx context.Context, t Template) (Template, error) {
	t.Name = strings.TrimSpace(t.Name)
	if err := validate(&t); err != nil {
		return Template{}, err
	}
	if err := ctx.Err(); err != nil {
		return Template{}, err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		t.ID, t.CreatedAt, t.UpdatedAt = newID(), now, now
		return put(tx, t)
	})
	if err != nil {
		return Template{}, fmt.Errorf("create template: %w", err)
	}
	return t, nil
}

// Get returns the template id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Template, error) {
	var t Template
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		t, err = get(tx, id)
		return err
	})
	if err != nil {
		return Template{}, fmt.Errorf("template %s: %w", id, err)
	}
	return t, nil
}

// List returns up to limit templates in id order, starting after the id after, and the
// cursor of the next page ("" on the last page).
func (s *Store) List(ctx context.Context, after string, limit int) ([]Template, string, error) {
	if limit < 1 {
		limit = 100
	}
	out, next, err := page(ctx, s.db, bucketTemplates, after, limit, func(k, v []byte) (Template, bool, error) {
		var t Template
		if err := json.Unmarshal(v, &t); err != nil {
			return t, false, fmt.Errorf("template %s: %w", k, err)
		}
		return t, true, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list templates: %w", err)
	}
	return out, next, nil
}

// Update replaces the name, subject, HTML and text of the template t.ID after
// validating them, and returns it as stored; ErrNotFound when there is none.
func (s *Store) Update(ctx context.Context, t Template) (Template, error) {
	t.Name = strings.TrimSpace(t.Name)
	if err := validate(&t); err != nil {
		return Template{}, err
	}
	var out Template
	err := s.db.Update(func(tx *bbolt.Tx) error {
		old, err := get(tx, t.ID)
		if err != nil {
			return err
		}
		out = old
		out.Name, out.Subject, out.HTML, out.Text = t.Name, t.Subject, t.HTML, t.Text
		out.UpdatedAt = s.now().UTC()
		return put(tx, out)
	})
	if err != nil {
		return Template{}, fmt.Errorf("update template %s: %w", t.ID, err)
	}
	return out, nil
}

// Delete removes the template id, or returns ErrNotFound.
func (s *Store) Delete(ctx context.Context, id string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTemplates)
		if b.Get([]byte(id)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete template %s: %w", id, err)
	}
	return nil
}

func get(tx *bbolt.Tx, id string) (Template, error) {
	v := tx.Bucket(bucketTemplates).Get([]byte(id))
	if v == nil {
		return Template{}, ErrNotFound
	}
	var t Template
	if err := json.Unmarshal(v, &t); err != nil { // copies out of the transaction
		return Template{}, err
	}
	return t, nil
}

func put(tx *bbolt.Tx, t Template) error {
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketTemplates).Put([]byte(t.ID), raw)
}

package preferences

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// Roles of API keys, from most to least powerful where they compare.
const (
	RoleAdmin    = "admin"
	RoleMarketer = "marketer"
	RoleDPO      = "dpo"
	RoleViewer   = "viewer"
)

// ValidRole reports whether role is one of the four roles.
func ValidRole(role string) bool {
	switch role {
	case RoleAdmin, RoleMarketer, RoleDPO, RoleViewer:
		return true
	}
	return false
}

// ErrBadKey is returned for a missing, unknown or revoked API key.
var ErrBadKey = errors.New("invalid API key")

// APIKey is a stored key's public description; the key itself is never stored.
type APIKey struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used,omitzero"`
}

type apiKeyRecord struct {
	APIKey
	Hash string `json:"hash"`
}

// Principal is the authenticated caller of the admin API.
type Principal struct {
	KeyID string
	Name  string
	Role  string
	// UserID is set when a person signed in to the admin app (then Name is their
	// email address and KeyID is empty).
	UserID string
}

// keyPrefix marks consentmail API keys, so secret scanners can recognise them.
const keyPrefix = "cmk_"

func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// CreateAPIKey makes a new random key with a role and returns it once; only its
// SHA-256 hash is stored (keys are 192 random bits, so a fast hash is enough).
func (s *Store) CreateAPIKey(ctx context.Context, role, name string) (APIKey, string, error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return APIKey{}, "", err
	}
	key := keyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	k, err := s.storeAPIKey(role, name, key)
	return k, key, err
}

// BootstrapKeyName names the admin key of CONSENTMAIL_ADMIN_API_KEY. No other key
// may take it: EnsureAPIKey revokes every other key of the name it is given.
const BootstrapKeyName = "bootstrap (CONSENTMAIL_ADMIN_API_KEY)"

// ErrReservedName is returned for a new key named BootstrapKeyName.
var ErrReservedName = errors.New("the name " + BootstrapKeyName + " is reserved")

// EnsureAPIKey makes key the one key named name, with the role (for the bootstrap key
// of CONSENTMAIL_ADMIN_API_KEY): a key of that name with another value (the variable
// changed) is revoked, and with key empty (the variable unset) every key of that name
// is. A key of this value with another role is an error, and then nothing changes.
func (s *Store) EnsureAPIKey(ctx context.Context, role, name, key string) (APIKey, error) {
	if key != "" && len(key) < 16 {
		return APIKey{}, fmt.Errorf("API key must be at least 16 characters")
	}
	if key != "" && !ValidRole(role) {
		return APIKey{}, fmt.Errorf("unknown role %q (admin, marketer, dpo, viewer)", role)
	}
	var out APIKey
	err := s.db.Update(func(tx *bbolt.Tx) error {
		keys, hashes := tx.Bucket(bucketAPIKeys), tx.Bucket(bucketAPIKeyHash)
		h := hashKey(key)
		var found *apiKeyRecord
		if id := hashes.Get([]byte(h)); key != "" && id != nil {
			found = &apiKeyRecord{}
			if err := getJSON(keys, id, found); err != nil {
				return err
			}
			if found.Role != role {
				return fmt.Errorf("API key %s exists with role %s", found.ID, found.Role)
			}
			out = found.APIKey
		}
		var stale []apiKeyRecord
		err := keys.ForEach(func(_, v []byte) error {
			var rec apiKeyRecord
			if err := decodeJSON(v, &rec); err != nil {
				return err
			}
			if rec.Name == name && rec.Hash != h {
				stale = append(stale, rec)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, rec := range stale {
			if err := keys.Delete([]byte(rec.ID)); err != nil {
				return err
			}
			if err := hashes.Delete([]byte(rec.Hash)); err != nil {
				return err
			}
		}
		if found != nil || key == "" {
			return nil
		}
		out = APIKey{ID: "key_" + randomHex(6), Name: name, Role: role, CreatedAt: s.now().UTC()}
		return putAPIKey(tx, apiKeyRecord{APIKey: out, Hash: h})
	})
	if err != nil {
		return APIKey{}, err
	}
	return out, nil
}

func (s *Store) storeAPIKey(role, name, key string) (APIKey, error) {
	if !ValidRole(role) {
		return APIKey{}, fmt.Errorf("unknown role %q (admin, marketer, dpo, viewer)", role)
	}
	if name == BootstrapKeyName {
		return APIKey{}, ErrReservedName
	}
	rec := apiKeyRecord{APIKey: APIKey{ID: "key_" + randomHex(6), Name: name, Role: role, CreatedAt: s.now().UTC()}, Hash: hashKey(key)}
	err := s.db.Update(func(tx *bbolt.Tx) error { return putAPIKey(tx, rec) })
	return rec.APIKey, err
}

func putAPIKey(tx *bbolt.Tx, rec apiKeyRecord) error {
	if err := putJSON(tx.Bucket(bucketAPIKeys), []byte(rec.ID), rec); err != nil {
		return err
	}
	return tx.Bucket(bucketAPIKeyHash).Put([]byte(rec.Hash), []byte(rec.ID))
}

// APIKeys lists every key's description.
func (s *Store) APIKeys(ctx context.Context) ([]APIKey, error) {
	out := []APIKey{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAPIKeys).ForEach(func(_, v []byte) error {
			var rec apiKeyRecord
			if err := decodeJSON(v, &rec); err != nil {
				return err
			}
			out = append(out, rec.APIKey)
			return nil
		})
	})
	return out, err
}

// DeleteAPIKey revokes a key.
func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		var rec apiKeyRecord
		if err := getJSON(tx.Bucket(bucketAPIKeys), []byte(id), &rec); err != nil {
			return fmt.Errorf("API key %s: %w", id, err)
		}
		if err := tx.Bucket(bucketAPIKeys).Delete([]byte(id)); err != nil {
			return err
		}
		return tx.Bucket(bucketAPIKeyHash).Delete([]byte(rec.Hash))
	})
}

// Authenticator checks API keys. It remembers when each key was last used, writing
// that down at most once a minute per key so reads stay reads.
type Authenticator struct {
	store *Store
	mu    sync.Mutex
	seen  map[string]time.Time
}

// NewAuthenticator returns an Authenticator over the store's keys.
func NewAuthenticator(s *Store) *Authenticator {
	return &Authenticator{store: s, seen: map[string]time.Time{}}
}

// Authenticate returns the principal of a presented key, or ErrBadKey.
func (a *Authenticator) Authenticate(ctx context.Context, key string) (Principal, error) {
	if len(key) < 16 || len(key) > 256 {
		return Principal{}, ErrBadKey
	}
	h := hashKey(key)
	var rec apiKeyRecord
	err := a.store.db.View(func(tx *bbolt.Tx) error {
		id := tx.Bucket(bucketAPIKeyHash).Get([]byte(h))
		if id == nil {
			return ErrBadKey
		}
		return getJSON(tx.Bucket(bucketAPIKeys), id, &rec)
	})
	if err != nil {
		return Principal{}, ErrBadKey
	}
	// The lookup is by hash, so timing reveals nothing about the key; compare anyway
	// so a corrupted index can never authenticate the wrong key.
	if subtle.ConstantTimeCompare([]byte(h), []byte(rec.Hash)) != 1 {
		return Principal{}, ErrBadKey
	}
	a.touch(rec.ID)
	return Principal{KeyID: rec.ID, Name: rec.Name, Role: rec.Role}, nil
}

func (a *Authenticator) touch(id string) {
	now := a.store.now().UTC()
	a.mu.Lock()
	last := a.seen[id]
	if now.Sub(last) < time.Minute {
		a.mu.Unlock()
		return
	}
	a.seen[id] = now
	a.mu.Unlock()
	go a.store.db.Batch(func(tx *bbolt.Tx) error {
		var rec apiKeyRecord
		b := tx.Bucket(bucketAPIKeys)
		if err := getJSON(b, []byte(id), &rec); err != nil {
			return nil // revoked meanwhile
		}
		rec.LastUsed = now
		return putJSON(b, []byte(id), rec)
	})
}

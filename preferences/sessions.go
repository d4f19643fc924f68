package preferences

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Sessions of the admin app live in the store: the browser holds a random token, the
// store only its SHA-256 (a copy of the database signs nobody in). A session ends
// after Idle without a request, after Max in any case, at sign-out, and when its user
// is disabled or changes their password elsewhere.

// SessionPolicy is how long sessions last.
type SessionPolicy struct {
	Idle time.Duration // without a request
	Max  time.Duration // since sign-in, whatever happens
}

// sessionTouch is how stale a session's last-seen time may get before a request
// writes it again: reads stay reads, and idle expiry is exact to within it.
const sessionTouch = time.Minute

// Pending steps of a session that is not a full sign-in yet.
const (
	PendingTOTP = "totp" // the password was right; the code is still to come
)

// UserSession is a stored session.
type UserSession struct {
	UserID  string    `json:"user"`
	CSRF    string    `json:"csrf"`              // the token every form of the session posts
	Pending string    `json:"pending,omitempty"` // a step of the sign-in still to do
	Method  string    `json:"method"`            // password or sso
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"`
}

func sessionKey(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return []byte(hex.EncodeToString(h[:]))
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// CreateSession starts a session for a user and returns its token (for the cookie,
// never stored) and the session. pending names a step still to do ("" for none).
func (s *Store) CreateSession(ctx context.Context, userID, pending, method string) (string, UserSession, error) {
	token := randomToken()
	var sess UserSession
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if _, err := getUser(tx, userID); err != nil {
			return err
		}
		now := s.now().UTC()
		sess = UserSession{UserID: userID, CSRF: randomToken(), Pending: pending, Method: method, Created: now, Seen: now}
		return putJSON(tx.Bucket(bucketSessions), sessionKey(token), sess)
	})
	if err != nil {
		return "", UserSession{}, err
	}
	return token, sess, nil
}

func (p SessionPolicy) expired(sess UserSession, now time.Time) bool {
	return now.Sub(sess.Seen) >= p.Idle || now.Sub(sess.Created) >= p.Max
}

// Session returns the live session of token and its user, noting the request; an
// unknown, expired or disabled user's session is ErrNotFound (and an expired one is
// deleted).
func (s *Store) Session(ctx context.Context, token string, p SessionPolicy) (UserSession, User, error) {
	if token == "" {
		return UserSession{}, User{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	key := sessionKey(token)
	var sess UserSession
	var rec userRecord
	stale := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		if err := getJSON(tx.Bucket(bucketSessions), key, &sess); err != nil {
			return fmt.Errorf("session: %w", err)
		}
		var err error
		rec, err = getUser(tx, sess.UserID)
		return err
	})
	if err != nil {
		return UserSession{}, User{}, err
	}
	now := s.now().UTC()
	if p.expired(sess, now) || rec.Disabled {
		stale = true
	}
	if !stale && now.Sub(sess.Seen) < sessionTouch {
		return sess, rec.User, nil
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if stale {
			return b.Delete(key)
		}
		var cur UserSession
		if err := getJSON(b, key, &cur); err != nil {
			return fmt.Errorf("session: %w", err) // signed out meanwhile
		}
		cur.Seen = now
		sess = cur
		return putJSON(b, key, cur)
	})
	if err != nil {
		return UserSession{}, User{}, err
	}
	if stale {
		return UserSession{}, User{}, fmt.Errorf("session expired: %w", ErrNotFound)
	}
	return sess, rec.User, nil
}

// DeleteSession ends a session (sign-out); an unknown token is not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	return s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketSessions).Delete(sessionKey(token)) })
}

// deleteUserSessions ends every session of a user but the one of keep.
func deleteUserSessions(tx *bbolt.Tx, userID, keep string) error {
	var keepKey string
	if keep != "" {
		keepKey = string(sessionKey(keep))
	}
	_, err := deleteSessions(tx, func(k []byte, sess UserSession, err error) (bool, error) {
		if err != nil {
			return false, err
		}
		return sess.UserID == userID && string(k) != keepKey, nil
	})
	return err
}

// deleteSessions deletes the sessions drop says to (given each one's key and its
// decoding, or the error decoding it) and returns how many.
func deleteSessions(tx *bbolt.Tx, drop func(k []byte, sess UserSession, err error) (bool, error)) (int, error) {
	b := tx.Bucket(bucketSessions)
	var del [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var sess UserSession
		derr := decodeJSON(v, &sess)
		ok, err := drop(k, sess, derr)
		if ok {
			del = append(del, append([]byte(nil), k...))
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, k := range del {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(del), nil
}

// SweepSessions deletes the expired sessions and returns how many there were.
func (s *Store) SweepSessions(ctx context.Context, p SessionPolicy) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		var err error
		n, err = deleteSessions(tx, func(_ []byte, sess UserSession, derr error) (bool, error) {
			return derr != nil || p.expired(sess, now), nil // an unreadable session goes too
		})
		return err
	})
	return n, err
}

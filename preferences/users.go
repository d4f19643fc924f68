package preferences

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"go.etcd.io/bbolt"
	"golang.org/x/crypto/argon2"

	"consentmail/preferences/address"
)

// Users are the people who sign in to the admin web app. A user has one of the API's
// roles, a password (unless they only sign in with single sign-on) hashed with
// argon2id, and optionally a TOTP second factor whose secret is sealed at rest. Email
// addresses of users are staff addresses, stored in their normal form
// (address.Normalise) to be shown to admins; they are not subscribers' data.

// MinPasswordLen is the fewest characters a password may have; MaxPasswordLen the
// most (argon2 hashes any length, a bound keeps a request from costing more).
const (
	MinPasswordLen = 12
	MaxPasswordLen = 1024
)

// Errors of the users domain.
var (
	// ErrBadCredentials is every refusal of a sign-in: unknown address, wrong password,
	// disabled user, a user without a password. One error, so that the answer never
	// says whether an account exists.
	ErrBadCredentials = errors.New("wrong email address or password")
	ErrWeakPassword   = fmt.Errorf("a password needs at least %d characters", MinPasswordLen)
	ErrBadCode        = errors.New("wrong, expired or already used code")
	ErrLastAdmin      = errors.New("the last enabled admin cannot be demoted or disabled")
)

// User is a person of the admin app, as pages show them. The password hash and the
// TOTP secret never leave the store.
type User struct {
	ID           string `json:"id"`
	Email        string `json:"email"`
	Role         string `json:"role"`
	Lang         string `json:"lang,omitempty"` // en or fr; empty: the browser's
	TOTPEnabled  bool   `json:"totp_enabled"`
	TOTPRequired bool   `json:"totp_required"` // set by an admin: no access before enrolling
	// MustChangePassword is set on a one-time password (new user, reset): the user
	// may do nothing else before choosing their own.
	MustChangePassword bool      `json:"must_change_password"`
	HasPassword        bool      `json:"has_password"` // false for users made by single sign-on
	SSO                bool      `json:"sso,omitempty"`
	Disabled           bool      `json:"disabled"`
	CreatedAt          time.Time `json:"created_at"`
	LastSignIn         time.Time `json:"last_sign_in,omitzero"`
}

type userRecord struct {
	User
	Password string `json:"password,omitempty"`  // argon2id, PHC string with its parameters
	TOTP     []byte `json:"totp,omitempty"`      // sealed secret (base32)
	TOTPStep int64  `json:"totp_step,omitempty"` // the last 30-second step whose code was accepted
}

// Argon2id parameters: OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane). Each
// hash stores its own, so raising them later leaves older hashes verifiable.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// dummyHash is checked when a sign-in names no user (or one without a password), so
// that the answer takes as long as for a real account.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

func hashPassword(password string) string {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// checkPassword compares password with an argon2id PHC string, in constant time.
func checkPassword(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 64 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// ValidatePassword reports ErrWeakPassword for a password too short (in characters)
// or too long to be one.
func ValidatePassword(password string) error {
	if n := utf8.RuneCountInString(password); n < MinPasswordLen || len(password) > MaxPasswordLen {
		return ErrWeakPassword
	}
	return nil
}

// oneTimeAlphabet has no letters that look alike (no 0/o, 1/l/i).
const oneTimeAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// newOneTimePassword is 16 random characters in four groups (about 79 bits).
func newOneTimePassword() string {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	var b strings.Builder
	for i, r := range raw {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		// 256 is not a multiple of 31: the bias is under 1 %, immaterial at 79 bits.
		b.WriteByte(oneTimeAlphabet[int(r)%len(oneTimeAlphabet)])
	}
	return b.String()
}

func userEmailKey(email string) (addr, key string, err error) {
	addr, key, err = address.Normalise(strings.TrimSpace(email))
	if err != nil {
		return "", "", fmt.Errorf("%q: %w", email, err)
	}
	return addr, key, nil
}

func getUser(tx *bbolt.Tx, id string) (userRecord, error) {
	var rec userRecord
	if err := getJSON(tx.Bucket(bucketUsers), []byte(id), &rec); err != nil {
		return rec, fmt.Errorf("user %s: %w", id, err)
	}
	return rec, nil
}

func getUserByEmail(tx *bbolt.Tx, key string) (userRecord, error) {
	id := tx.Bucket(bucketUserEmails).Get([]byte(key))
	if id == nil {
		return userRecord{}, fmt.Errorf("user %s: %w", key, ErrNotFound)
	}
	return getUser(tx, string(id))
}

// putUser writes rec, after deriving what its public part says of its secrets.
func putUser(tx *bbolt.Tx, rec *userRecord) error {
	rec.HasPassword = rec.Password != ""
	rec.TOTPEnabled = len(rec.TOTP) > 0
	return putJSON(tx.Bucket(bucketUsers), []byte(rec.ID), rec)
}

// CreateUser adds a user with a one-time password, returned once: it must be changed
// at the first sign-in. An address already taken is ErrConflict.
func (s *Store) CreateUser(ctx context.Context, email, role string) (User, string, error) {
	if !ValidRole(role) {
		return User{}, "", fmt.Errorf("unknown role %q (admin, marketer, dpo, viewer)", role)
	}
	addr, key, err := userEmailKey(email)
	if err != nil {
		return User{}, "", err
	}
	password := newOneTimePassword()
	hash := hashPassword(password)
	var out User
	err = s.db.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketUserEmails).Get([]byte(key)) != nil {
			return fmt.Errorf("user %s: %w", addr, ErrConflict)
		}
		rec := userRecord{User: User{ID: "usr_" + randomHex(8), Email: addr, Role: role, MustChangePassword: true,
			CreatedAt: s.now().UTC()}, Password: hash}
		if err := putUser(tx, &rec); err != nil {
			return err
		}
		out = rec.User
		return tx.Bucket(bucketUserEmails).Put([]byte(key), []byte(rec.ID))
	})
	if err != nil {
		return User{}, "", err
	}
	return out, password, nil
}

// EnsureSSOUser makes the user an identity provider vouched for: created with the
// role, or given it when they exist. A disabled user stays disabled (the caller
// refuses them).
func (s *Store) EnsureSSOUser(ctx context.Context, email, role string) (User, error) {
	if !ValidRole(role) {
		return User{}, fmt.Errorf("unknown role %q", role)
	}
	addr, key, err := userEmailKey(email)
	if err != nil {
		return User{}, err
	}
	var out User
	err = s.db.Update(func(tx *bbolt.Tx) error {
		rec, err := getUserByEmail(tx, key)
		if errors.Is(err, ErrNotFound) {
			rec = userRecord{User: User{ID: "usr_" + randomHex(8), Email: addr, CreatedAt: s.now().UTC()}}
			if err := tx.Bucket(bucketUserEmails).Put([]byte(key), []byte(rec.ID)); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if rec.Role == RoleAdmin && role != RoleAdmin && !rec.Disabled {
			if err := otherAdmin(tx, rec.ID); err != nil {
				return err
			}
		}
		rec.Role, rec.SSO = role, true
		err = putUser(tx, &rec)
		out = rec.User
		return err
	})
	return s.userOut(out, err)
}

func (s *Store) userOut(u User, err error) (User, error) {
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// Users lists every user, by email address.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	out := []User{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(_, v []byte) error {
			var rec userRecord
			if err := decodeJSON(v, &rec); err != nil {
				return err
			}
			out = append(out, rec.User)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Email, b.Email) })
	return out, err
}

// UserByID returns a user, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	var rec userRecord
	err := s.db.View(func(tx *bbolt.Tx) (err error) { rec, err = getUser(tx, id); return err })
	return s.userOut(rec.User, err)
}

// UserByEmail returns the user of an address, or ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	_, key, err := userEmailKey(email)
	if err != nil {
		return User{}, fmt.Errorf("user: %w", ErrNotFound)
	}
	var rec userRecord
	err = s.db.View(func(tx *bbolt.Tx) (err error) { rec, err = getUserByEmail(tx, key); return err })
	return s.userOut(rec.User, err)
}

// CheckPassword returns the enabled user of email whose password this is; any
// refusal is ErrBadCredentials, after the same work.
func (s *Store) CheckPassword(ctx context.Context, email, password string) (User, error) {
	if len(password) > MaxPasswordLen {
		return User{}, ErrBadCredentials
	}
	var rec userRecord
	found := false
	if _, key, err := userEmailKey(email); err == nil {
		err := s.db.View(func(tx *bbolt.Tx) (err error) { rec, err = getUserByEmail(tx, key); return err })
		found = err == nil && rec.Password != ""
	}
	hash := dummyHash
	if found {
		hash = rec.Password
	}
	if ok := checkPassword(hash, password); !ok || !found || rec.Disabled {
		return User{}, ErrBadCredentials
	}
	return rec.User, nil
}

// updateUser changes one user in a write transaction.
func (s *Store) updateUser(id string, fn func(tx *bbolt.Tx, rec *userRecord) error) (User, error) {
	var out User
	err := s.db.Update(func(tx *bbolt.Tx) error {
		rec, err := getUser(tx, id)
		if err != nil {
			return err
		}
		if err := fn(tx, &rec); err != nil {
			return err
		}
		err = putUser(tx, &rec)
		out = rec.User
		return err
	})
	return s.userOut(out, err)
}

// ChangePassword sets a user's own password after checking the current one (which a
// user made by single sign-on does not have: then current is ignored), and clears
// MustChangePassword. The user's other sessions are ended.
func (s *Store) ChangePassword(ctx context.Context, id, current, next string, keepSession string) error {
	if err := ValidatePassword(next); err != nil {
		return err
	}
	rec, err := s.userRecord(id)
	if err != nil {
		return err
	}
	if rec.Password != "" && !checkPassword(rec.Password, current) {
		return ErrBadCredentials
	}
	hash := hashPassword(next)
	_, err = s.updateUser(id, func(tx *bbolt.Tx, r *userRecord) error {
		if r.Password != rec.Password {
			return ErrConflict // changed meanwhile
		}
		r.Password, r.MustChangePassword = hash, false
		return deleteUserSessions(tx, id, keepSession)
	})
	return err
}

func (s *Store) userRecord(id string) (userRecord, error) {
	var rec userRecord
	err := s.db.View(func(tx *bbolt.Tx) (err error) { rec, err = getUser(tx, id); return err })
	return rec, err
}

// ResetPassword gives a user a new one-time password (returned once), ends their
// sessions and, with resetTOTP, removes their second factor (a lost phone).
func (s *Store) ResetPassword(ctx context.Context, id string, resetTOTP bool) (User, string, error) {
	password := newOneTimePassword()
	hash := hashPassword(password)
	u, err := s.updateUser(id, func(tx *bbolt.Tx, r *userRecord) error {
		r.Password, r.MustChangePassword = hash, true
		if resetTOTP {
			r.TOTP, r.TOTPStep = nil, 0
		}
		return deleteUserSessions(tx, id, "")
	})
	if err != nil {
		return User{}, "", err
	}
	return u, password, nil
}

// otherAdmin returns ErrLastAdmin unless an enabled admin other than id exists.
func otherAdmin(tx *bbolt.Tx, id string) error {
	found := false
	err := tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
		var rec userRecord
		if err := decodeJSON(v, &rec); err != nil {
			return err
		}
		found = found || string(k) != id && rec.Role == RoleAdmin && !rec.Disabled
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		return ErrLastAdmin
	}
	return nil
}

// ChangeUserRole changes a user's role; the last enabled admin keeps theirs.
func (s *Store) ChangeUserRole(ctx context.Context, id, role string) (User, error) {
	if !ValidRole(role) {
		return User{}, fmt.Errorf("unknown role %q (admin, marketer, dpo, viewer)", role)
	}
	return s.updateUser(id, func(tx *bbolt.Tx, r *userRecord) error {
		if r.Role == RoleAdmin && role != RoleAdmin && !r.Disabled {
			if err := otherAdmin(tx, id); err != nil {
				return err
			}
		}
		r.Role = role
		return nil
	})
}

// ChangeUserAccess disables a user (ending their sessions) or enables them again; the
// last enabled admin cannot be disabled.
func (s *Store) ChangeUserAccess(ctx context.Context, id string, disabled bool) (User, error) {
	return s.updateUser(id, func(tx *bbolt.Tx, r *userRecord) error {
		if disabled && r.Role == RoleAdmin && !r.Disabled {
			if err := otherAdmin(tx, id); err != nil {
				return err
			}
		}
		r.Disabled = disabled
		if disabled {
			return deleteUserSessions(tx, id, "")
		}
		return nil
	})
}

// RequireTOTP makes a second factor compulsory for a user (who must then enrol
// before anything else), or optional again.
func (s *Store) RequireTOTP(ctx context.Context, id string, required bool) (User, error) {
	return s.updateUser(id, func(_ *bbolt.Tx, r *userRecord) error { r.TOTPRequired = required; return nil })
}

// ChangeUserLang stores the language a user chose for the admin app: en, fr, or empty
// for their browser's.
func (s *Store) ChangeUserLang(ctx context.Context, id, lang string) (User, error) {
	switch lang {
	case "", "en", "fr":
	default:
		return User{}, fmt.Errorf("unknown language %q", lang)
	}
	return s.updateUser(id, func(_ *bbolt.Tx, r *userRecord) error { r.Lang = lang; return nil })
}

// TOTP codes: RFC 6238 with SHA-1, 6 digits and 30-second steps (what every
// authenticator app does), accepted one step early or late for clock drift. A code
// is accepted once: a step at or before the last one accepted is refused.
const totpPeriod = 30

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// NewTOTPKey makes a TOTP secret for a user to enrol, with the otpauth:// URI their
// authenticator app reads; nothing is stored until EnableTOTP.
func NewTOTPKey(issuer, account string) (secret, uri string, err error) {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: totpPeriod,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return "", "", err
	}
	return k.Secret(), k.URL(), nil
}

// TOTPCode is the code of secret at t: for tests, which play the authenticator app.
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totpOpts)
}

// totpMatch returns the step whose code code is, among the steps around now later
// than last.
func totpMatch(secret, code string, now time.Time, last int64) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 {
		return 0, false
	}
	step := now.Unix() / totpPeriod
	for _, d := range []int64{-1, 0, 1} {
		st := step + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(st*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && st > last {
			return st, true
		}
	}
	return 0, false
}

func (s *Store) sealTOTP(id, secret string) []byte {
	return seal(s.users, []byte(secret), []byte("totp/"+id))
}

func (s *Store) openTOTP(id string, sealed []byte) (string, error) {
	b, err := open(s.users, sealed, []byte("totp/"+id))
	return string(b), err
}

// EnableTOTP turns on the second factor with secret once code shows the user's app
// has it (ErrBadCode otherwise); the secret is sealed at rest.
func (s *Store) EnableTOTP(ctx context.Context, id, secret, code string) (User, error) {
	return s.updateUser(id, func(_ *bbolt.Tx, r *userRecord) error {
		step, ok := totpMatch(secret, code, s.now(), 0)
		if !ok {
			return ErrBadCode
		}
		r.TOTP, r.TOTPStep = s.sealTOTP(id, secret), step
		return nil
	})
}

// DisableTOTP turns the second factor off after checking the user's password.
func (s *Store) DisableTOTP(ctx context.Context, id, password string) (User, error) {
	rec, err := s.userRecord(id)
	if err != nil {
		return User{}, err
	}
	if rec.Password == "" || !checkPassword(rec.Password, password) {
		return User{}, ErrBadCredentials
	}
	return s.updateUser(id, func(_ *bbolt.Tx, r *userRecord) error {
		r.TOTP, r.TOTPStep = nil, 0
		return nil
	})
}

// VerifyTOTP accepts a user's current code once (ErrBadCode for a wrong code, or one
// already used).
func (s *Store) VerifyTOTP(ctx context.Context, id, code string) error {
	_, err := s.updateUser(id, func(_ *bbolt.Tx, r *userRecord) error {
		if len(r.TOTP) == 0 {
			return ErrBadCode
		}
		secret, err := s.openTOTP(id, r.TOTP)
		if err != nil {
			return fmt.Errorf("TOTP secret of %s: %w", id, err)
		}
		step, ok := totpMatch(secret, code, s.now(), r.TOTPStep)
		if !ok {
			return ErrBadCode
		}
		r.TOTPStep = step
		return nil
	})
	return err
}

// Outcomes and methods of sign-in attempts in the auth log.
const (
	AuthOK        = "ok"
	AuthFailed    = "failed"    // wrong address, password or code
	AuthThrottled = "throttled" // refused before checking: too many failures
	AuthRefused   = "refused"   // single sign-on vouched for someone with no role here, or a disabled user

	MethodPassword = "password"
	MethodTOTP     = "totp"
	MethodSSO      = "sso"
)

// AuthEvent is one sign-in attempt in the auth log.
type AuthEvent struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	UserID string    `json:"user_id,omitempty"`
	Email  string    `json:"email,omitempty"` // the user's address, when the attempt named a user
	// EmailHash is a keyed hash of the normalised address tried when it names no user:
	// repeated guesses are recognisable without the log keeping what was typed.
	EmailHash string `json:"email_hash,omitempty"`
	IP        string `json:"ip"`
	Outcome   string `json:"outcome"`
	Method    string `json:"method"`
}

// maxAuthLog is how many attempts the auth log keeps (the oldest go first).
const maxAuthLog = 10_000

// RecordAuth appends a sign-in attempt to the auth log. When e names no user,
// typed (what was typed as the address) is looked up: a user's id, else its keyed
// hash. A successful attempt stamps the user's last sign-in.
func (s *Store) RecordAuth(ctx context.Context, e AuthEvent, typed string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		e.Time = now
		if e.UserID == "" && typed != "" {
			if _, key, err := userEmailKey(typed); err == nil {
				if rec, err := getUserByEmail(tx, key); err == nil {
					e.UserID = rec.ID
				} else {
					e.EmailHash = hex.EncodeToString(s.keys.blindIndex(key)[:8])
				}
			} else {
				e.EmailHash = hex.EncodeToString(s.keys.blindIndex(strings.ToLower(typed))[:8])
			}
		}
		if e.UserID != "" {
			if rec, err := getUser(tx, e.UserID); err == nil {
				e.Email = rec.Email
				if e.Outcome == AuthOK {
					rec.LastSignIn = now
					if err := putUser(tx, &rec); err != nil {
						return err
					}
				}
			}
		}
		b := bucket(tx, bucketAuthLog)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		if seq > maxAuthLog {
			if err := b.Delete(binary.BigEndian.AppendUint64(nil, seq-maxAuthLog)); err != nil {
				return err
			}
		}
		return putJSON(b, binary.BigEndian.AppendUint64(nil, seq), e)
	})
}

// AuthLog returns the latest attempts, newest first, at most limit.
func (s *Store) AuthLog(ctx context.Context, limit int) ([]AuthEvent, error) {
	out := []AuthEvent{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAuthLog).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var e AuthEvent
			if err := decodeJSON(v, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

package preferences

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	gojson "github.com/goccy/go-json"
	"go.etcd.io/bbolt"
)

// Sentinel errors of the consent book.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// Bucket names: the store owns these; other packages own theirs in the same file.
var (
	bucketLists       = []byte("prefs.lists")
	bucketConsentText = []byte("prefs.consent_texts")
	bucketSubscribers = []byte("prefs.subscribers")
	bucketEmailIndex  = []byte("prefs.email_index")
	bucketDataKeys    = []byte("prefs.data_keys")
	bucketKeyGroups   = []byte("prefs.key_groups") // key group (4) | subscriber id -> nothing: who a KEK wraps
	bucketMembers     = []byte("prefs.members")    // list id \x00 subscriber id -> status
	// bucketNotActive indexes the subscribers whose status is not active (restricted,
	// blocked, erased): status \x00 subscriber id -> nothing. apply keeps it; counting a
	// campaign's exclusions reads it instead of decoding every member.
	bucketNotActive   = []byte("prefs.not_active")
	bucketLedger      = []byte("prefs.ledger")
	bucketLedgerBySub = []byte("prefs.ledger_by_subscriber") // subscriber id \x00 seq -> nil
	bucketAPIKeys     = []byte("prefs.apikeys")
	bucketAPIKeyHash  = []byte("prefs.apikey_hashes")
	bucketSuppressed  = []byte("prefs.suppressed")   // blind index of an address erased on request -> erasure time
	bucketActivity    = []byte("prefs.activity")     // subscriber id -> last open or click
	bucketErasures    = []byte("prefs.erasures")     // subscriber id -> the steps of their erasure still to do
	bucketSoftBounces = []byte("prefs.soft_bounces") // subscriber id -> times of transient bounces in the window
	bucketQuarantine  = []byte("prefs.quarantine")   // received (8) | seq (8) -> sealed unmatched inbound mail
	bucketUsers       = []byte("prefs.users")        // user id -> user (users.go)
	bucketUserEmails  = []byte("prefs.user_emails")  // normalised address -> user id
	bucketSessions    = []byte("prefs.sessions")     // SHA-256 of a session token -> session (sessions.go)
	bucketAuthLog     = []byte("prefs.auth_log")     // seq -> sign-in attempt
)

// Store is the consent book. It is safe for concurrent use.
type Store struct {
	db     *bbolt.DB
	keys   *keyring
	now    func() time.Time
	commit *committer
	cache  *listCache
	mirror WithdrawalMirror
	// journal records erasures apart from the store (nil: none kept).
	journal *ErasureJournal
	// headKey signs the ledger's head (LedgerHead).
	headKey ed25519.PrivateKey
	users   cipher.AEAD // seals users' TOTP secrets
	// ledgerOnly: opened without the key file (LedgerOnly).
	ledgerOnly bool
	// upgrades rewrite other features' leftovers before the free pages are
	// overwritten, at the first open by this version (WithUpgrade).
	upgrades []func(*bbolt.Tx) error
}

// WithdrawalMirror is told of every withdrawal and restoration of consent after the
// store commits it and before the change is answered, so that processes without the
// store (queue workers on other hosts) honour it for mail queued earlier. Lists nil
// means the subscriber as a whole (restricted, erased, blocked, and back). Withdraw
// also waits (bounded) for the sends to that person already under way, so that a
// withdrawal that has answered stops every later message.
type WithdrawalMirror interface {
	Withdraw(ctx context.Context, subscriber string, lists []string) error
	Restore(ctx context.Context, subscriber string, lists []string) error
}

// Option configures a Store.
type Option func(*Store)

// WithMirror makes the store tell m of every withdrawal and restoration of consent
// before the change is answered.
func WithMirror(m WithdrawalMirror) Option { return func(s *Store) { s.mirror = m } }

// LedgerOnly opens the store for a maintenance command that touches no subscriber's
// personal data (the ledger, users, API keys), without the installation's secret: the
// key file is not opened, and no subscriber's data can be read or written
// (ErrKeyDestroyed).
func LedgerOnly() Option { return func(s *Store) { s.ledgerOnly = true } }

// WithErasureJournal makes every erasure append itself to j (a step of the erasure),
// so that ReplayErasures can apply it again to a restored backup.
func WithErasureJournal(j *ErasureJournal) Option { return func(s *Store) { s.journal = j } }

// WithUpgrade makes the first open of a data file by this version run fn in a write
// transaction before the file's free pages are overwritten (see upgradeDataFile): a
// feature whose buckets an earlier version left personal data in, in the clear, rewrites
// it there, and the pages that held it are then zeroed too.
func WithUpgrade(fn func(*bbolt.Tx) error) Option {
	return func(s *Store) { s.upgrades = append(s.upgrades, fn) }
}

// New opens the consent book in db (creating its buckets) with keys derived from
// secret. now is the store's clock; it is read once per transaction. It must be called
// before any other transaction on db is open: the first open by this version overwrites
// the data file's free pages, and a page a reader still sees may be among them.
func New(db *bbolt.DB, secret []byte, now func() time.Time, opts ...Option) (*Store, error) {
	keys, err := newKeyring(secret)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, keys: keys, now: now, headKey: headKey(secret)}
	for _, o := range opts {
		o(s)
	}
	if s.ledgerOnly {
		keys.file = &keyFile{}
	} else if keys.file, err = openKeyFile(KeyFilePath(db.Path()), secret); err != nil {
		return nil, err
	}
	cache := &listCache{}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketLists, bucketConsentText, bucketSubscribers, bucketEmailIndex,
			bucketDataKeys, bucketKeyGroups, bucketMembers, bucketLedger, bucketLedgerBySub, bucketAPIKeys, bucketAPIKeyHash, bucketSuppressed, bucketActivity, bucketErasures,
			bucketSoftBounces, bucketQuarantine, bucketUsers, bucketUserEmails, bucketSessions, bucketAuthLog} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		if err := buildNotActive(tx); err != nil {
			return err
		}
		if err := buildStateCounts(tx); err != nil {
			return err
		}
		return cache.load(tx)
	})
	if err != nil {
		keys.file.close()
		return nil, err
	}
	if s.users, err = newAEAD(DeriveKey(secret, "user-totp")); err != nil {
		keys.file.close()
		return nil, err
	}
	s.commit, s.cache = newCommitter(db), cache
	if s.ledgerOnly {
		return s, nil
	}
	if _, err := s.upgradeDataFile(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the group committer and closes the key file. It does not close the database, which belongs to
// the caller.
func (s *Store) Close() error {
	s.commit.close()
	return s.keys.file.close()
}

// Ping reports whether the database answers (for /readyz).
func (s *Store) Ping(ctx context.Context) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketLedger) == nil {
			return errors.New("ledger bucket missing")
		}
		return nil
	})
}

// BoltOptions are the options the data file is opened with, by the service and by the
// tests and benchmarks of the store, so that they measure it as it runs: bbolt's array
// freelist, which keeps the free pages sorted, so that a commit writes them with a
// merge where the hashmap freelist sorted them all at every commit (5 % of a sending
// process's CPU), and a 1 GiB initial mapping (address space, not memory) that spares
// the growing file most remaps, each of which waits for every open read transaction
// to end.
func BoltOptions() *bbolt.Options {
	return &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistArrayType, InitialMmapSize: 1 << 30}
}

// appendFill is the fill percent of buckets whose keys mostly grow (sequence numbers,
// time-ordered ids): bbolt's default of one half would leave every page half empty
// and double the pages each commit writes.
const appendFill = 0.9

// bucket returns a bucket of the store, tuned for mostly growing keys. The email
// index (keyed by a hash) and the ledger's subscriber index (later events of older
// subscribers land in the middle) keep the default fill so their inserts find room.
func bucket(tx *bbolt.Tx, name []byte) *bbolt.Bucket {
	b := tx.Bucket(name)
	if b != nil && tx.Writable() {
		b.FillPercent = appendFill
	}
	return b
}

// Seeker looks keys up in one bucket through one cursor. Bucket.Get makes a cursor,
// and grows its stack, for every key; a campaign looks up half a dozen per recipient.
// A cursor's Seek starts again from the bucket's root, so a Seeker of a write
// transaction sees what the transaction has put since it was made.
type Seeker struct{ c *bbolt.Cursor }

// SeekerOf returns a Seeker on b.
func SeekerOf(b *bbolt.Bucket) Seeker { return Seeker{b.Cursor()} }

// Get is Bucket.Get: the value of key, nil when there is none or it names a bucket.
func (s Seeker) Get(key []byte) []byte {
	k, v := s.c.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// getJSON decodes the value of key in b (a bucket, or a Seeker on one), ErrNotFound when
// there is none.
func getJSON[B interface{ Get(key []byte) []byte }](b B, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return ErrNotFound
	}
	return gojson.Unmarshal(raw, v)
}

func putJSON(b *bbolt.Bucket, key []byte, v any) error {
	raw, err := gojson.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func decodeJSON(raw []byte, v any) error { return gojson.Unmarshal(raw, v) }

// GroupCommit runs fn in the store's group-committed write transaction and returns
// once it is durable. Other owners of buckets in the same file (the embedded queue)
// use it so that their writes share the signups' fsyncs. fn may run more than once.
func (s *Store) GroupCommit(ctx context.Context, fn func(*bbolt.Tx) error) error {
	return s.commit.update(ctx, fn)
}

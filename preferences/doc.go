// Package preferences is the consent book, pure domain: the bbolt store of lists,
// subscribers and their subscriptions, the API keys, and the append-only, hash-chained
// consent ledger that proves every consent and every withdrawal; sealing, import rules,
// erasure, the export document, retention and the audience campaigns read.
//
// It imports no HTTP framework, mailer, queue or templates. Its adapters live in
// subpackages and depend on it, never the other way:
//
//   - adminapi: the admin API of lists, API keys, the ledger, subscribers and the register
//   - pages: the unsubscribe pages and the preference centre
//   - linkmail: the mail of data links and preference links, and its queue handler
//
// Beside them, small leaves any feature may import: apiauth (the admin API's bearer-key
// middleware), linktoken (signed links and forms), httperr (the contract's error shape).
//
// # Promises
//
//   - Personal data (email, name, attributes, IP addresses, user agents) is sealed with
//     AES-256-GCM under a per-subscriber data key. Data keys are wrapped by a key derived
//     from the root secret. Email lookup uses a keyed blind index (HMAC-SHA256 of the
//     normalised address), so no plaintext address is ever written to disk.
//   - The ledger is append-only. Event n stores the hash of event n-1 and its own hash,
//     SHA-256 over its sequence number, the previous hash and its canonical body. The
//     ledger's personal fields are sealed with the subscriber's data key, so destroying
//     that key (erasure) makes them unrecoverable while the chain still verifies.
//   - Writes that many requests make at once (signups, confirmations) are group
//     committed: each request waits for the fsync of the transaction that holds it, and
//     one transaction holds every request that arrived while the previous one committed.
//
// # Caveats
//
// Verify detects any change to stored events and any removal inside the chain; removing
// the newest events is only detectable against a head hash recorded elsewhere (print the
// head from ledger verify into your own records).
package preferences

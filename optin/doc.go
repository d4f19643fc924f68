// Package optin takes signups from websites and runs the double opt-in.
//
// # Promises
//
//   - POST /api/v1/signups and the hosted form answer 202 {"status":"pending"} to every
//     well-formed request, whether the address is new, pending, confirmed or
//     unsubscribed: the answer never tells whether someone is on a list.
//   - The signup, its ledger event and its queued confirmation mail are written in one
//     group-committed transaction before the answer: a crash right after a 202 loses
//     none of them.
//   - Confirmation links are signed (HMAC-SHA256 over subscriber, lists, opt-in round,
//     purpose and expiry) and verified in constant time. GET /confirm/{token} only shows
//     a Confirm button: mail scanners that pre-fetch links confirm nothing. Only the POST
//     of that button confirms, and the ledger records its time, IP and user agent.
//   - A pending address gets at most one confirmation mail per ten minutes, and each
//     client IP at most CONSENTMAIL_SIGNUP_RATE signups.
package optin

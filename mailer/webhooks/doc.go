// Package webhooks receives the bounce and complaint events of sending relays that
// report them over HTTP instead of mail: Amazon SES (through SNS), Postmark, SendGrid
// and Mailgun. It checks each request's signature, turns each event into the report
// types of mailer/inbound (Bounce, Feedback) and hands them to a Sink, the same one
// the inbound SMTP server feeds. It imports no consentmail feature.
//
// # Promises
//
//   - Nothing is believed unsigned. SES: the SNS message signature (SignatureVersion 1,
//     SHA1withRSA, or 2, SHA256withRSA, over SNS's canonical string) with the
//     certificate at SigningCertURL, fetched only over https from an SNS host
//     (sns.REGION.amazonaws.com), and only for a configured topic. Postmark, which
//     signs nothing: HTTP basic auth with the configured credentials. SendGrid: the
//     ECDSA P-256 signature of timestamp and body with the configured public key.
//     Mailgun: the HMAC-SHA256 of timestamp and token with the webhook signing key.
//     A request that fails its check changes nothing (401 or 403).
//   - Replays are refused: a signed timestamp (SendGrid, Mailgun) more than
//     MaxSkew away from now, and a signature, token or SNS message id already
//     accepted within twice that, get 403.
//   - The answer is 2xx only once every event of the request is recorded (or
//     quarantined, or known to be of no interest such as a delivery): a Sink error
//     answers 503, so the relay delivers again.
//   - An event is matched to its message by the X-Consentmail-Ref token the relay
//     echoes (SES mail.headers, Postmark Metadata or Headers, SendGrid custom args,
//     Mailgun user-variables or message.headers), else a bounce+TOKEN@ return path; an
//     event that names no message (or a token the Sink refuses with
//     inbound.ErrUnmatched) goes to Sink.Quarantine, never dropped.
package webhooks

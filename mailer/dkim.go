package mailer

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// DKIMSigner signs messages with DKIM (RFC 6376) for one domain and selector. It is
// safe for concurrent use.
type DKIMSigner struct {
	opts dkim.SignOptions
	pub  crypto.PublicKey
}

// dkimHeaders are signed and over-signed: each is named in h= once more than the
// message has it (once when absent), so that a copy added anywhere later, such as a
// second From or List-Unsubscribe above the signed one, breaks the signature (RFC 6376
// §5.4.2 and §8.15). RFC 8058 requires List-Unsubscribe and List-Unsubscribe-Post to be
// signed.
var dkimHeaders = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Post",
	"Feedback-ID", "In-Reply-To", "References",
}

// NewDKIMSigner returns a signer for domain (the d= tag) and selector (s=) with the
// private key in keyPEM: RSA as PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY"),
// or Ed25519 as PKCS#8. RSA keys shorter than 1024 bits are refused (RFC 8301).
// Signatures use SHA-256 and relaxed/relaxed canonicalization.
func NewDKIMSigner(domain, selector string, keyPEM []byte) (*DKIMSigner, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" || strings.ContainsAny(domain, " ;@:/\r\n") {
		return nil, fmt.Errorf("dkim: bad domain %q", domain)
	}
	if selector == "" || strings.ContainsAny(selector, " ;\r\n") {
		return nil, fmt.Errorf("dkim: bad selector %q", selector)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	s := &DKIMSigner{
		opts: dkim.SignOptions{
			Domain:                 domain,
			Selector:               selector,
			Signer:                 key,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             dkimHeaders,
		},
		pub: key.Public(),
	}
	// Fail at start-up, not at the first send, if go-msgauth dislikes the options.
	if _, err := dkim.NewSigner(&s.opts); err != nil {
		return nil, err
	}
	return s, nil
}

func parsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("dkim: no PEM block in key")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("dkim: unsupported PEM block %q; want RSA PRIVATE KEY or PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: parse key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("dkim: RSA key of %d bits is too short; want ≥ 1024 (2048 recommended)", k.N.BitLen())
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("dkim: unsupported key type %T; want RSA or Ed25519", key)
}

// Signature returns the DKIM-Signature header field, with its trailing CRLF, for msg,
// a complete CRLF-terminated message; prepend it to msg to send. Every header field of
// the signed set is over-signed (see dkimHeaders).
func (s *DKIMSigner) Signature(msg []byte) (string, error) {
	opts := s.opts
	opts.HeaderKeys = overSigned(msg)
	sg, err := dkim.NewSigner(&opts)
	if err != nil {
		return "", err
	}
	if _, err := sg.Write(msg); err != nil {
		sg.Close()
		return "", fmt.Errorf("dkim: %w", err)
	}
	if err := sg.Close(); err != nil {
		return "", fmt.Errorf("dkim: %w", err)
	}
	return sg.Signature(), nil
}

// overSigned returns h= for msg: each name of dkimHeaders as many times as msg has
// the field, plus one.
func overSigned(msg []byte) []string {
	counts := make(map[string]int, len(dkimHeaders))
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // a folded continuation
		}
		if name, _, ok := bytes.Cut(line, []byte(":")); ok {
			counts[strings.ToLower(string(bytes.TrimSpace(name)))]++
		}
	}
	keys := make([]string, 0, len(dkimHeaders)+8)
	for _, h := range dkimHeaders {
		for range counts[strings.ToLower(h)] + 1 {
			keys = append(keys, h)
		}
	}
	return keys
}

// Domain returns the signing domain (d=).
func (s *DKIMSigner) Domain() string { return s.opts.Domain }

// Selector returns the selector (s=).
func (s *DKIMSigner) Selector() string { return s.opts.Selector }

// DNSName returns where the public key is published: selector._domainkey.domain.
func (s *DKIMSigner) DNSName() string {
	return s.opts.Selector + "._domainkey." + s.opts.Domain
}

// DNSRecord returns the TXT record to publish at DNSName, e.g. "v=DKIM1; k=rsa; p=MIIB…".
func (s *DKIMSigner) DNSRecord() string {
	switch k := s.pub.(type) {
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k)
	default:
		der, _ := x509.MarshalPKIXPublicKey(k) // an *rsa.PublicKey always marshals
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	}
}

// dkimKeys is a Sender's signers by domain.
type dkimKeys map[string]*DKIMSigner

func newDKIMKeys(signers []*DKIMSigner) (dkimKeys, error) {
	keys := dkimKeys{}
	for _, s := range signers {
		if s == nil {
			continue
		}
		if _, dup := keys[s.Domain()]; dup {
			return nil, fmt.Errorf("dkim: two keys for %s; want one per sending domain", s.Domain())
		}
		keys[s.Domain()] = s
	}
	return keys, nil
}

// forDomain returns the signer for a From domain (lower case, A-labels): the domain's
// own, else its nearest parent's, which DMARC's relaxed alignment accepts (a key for
// example.org signs mail from news.example.org). Nil when none applies.
func (k dkimKeys) forDomain(domain string) *DKIMSigner {
	for d := domain; strings.Contains(d, "."); {
		if s := k[d]; s != nil {
			return s
		}
		_, d, _ = strings.Cut(d, ".")
	}
	return k[domain]
}

// DKIMSignerFor returns the signer a Sender with signers uses for mail from domain
// (see Options.DKIM), or nil when such mail goes out unsigned.
func DKIMSignerFor(signers []*DKIMSigner, domain string) *DKIMSigner {
	keys, err := newDKIMKeys(signers)
	if err != nil {
		return nil
	}
	return keys.forDomain(strings.ToLower(strings.TrimSuffix(domain, ".")))
}

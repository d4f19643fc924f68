package mailer

import (
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

// dkimHeaders are signed when present and over-signed when absent, so nobody can add
// them later (RFC 6376 §5.4.2); RFC 8058 requires List-Unsubscribe and
// List-Unsubscribe-Post to be signed.
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
	if domain == "" || strings.ContainsAny(domain, " ;\r\n") {
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
// a complete CRLF-terminated message; prepend it to msg to send.
func (s *DKIMSigner) Signature(msg []byte) (string, error) {
	sg, err := dkim.NewSigner(&s.opts)
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

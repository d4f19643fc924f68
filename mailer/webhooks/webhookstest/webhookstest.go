// Package webhookstest signs relay webhook requests the way SNS, SendGrid and Mailgun
// do, with keys made by the test: an SNS certificate served over TLS on loopback, an
// ECDSA P-256 key, an HMAC key.
package webhookstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// SNS is a stand-in for Amazon SNS: its signing certificate and subscription URLs are
// served by a TLS server on 127.0.0.1.
type SNS struct {
	Server    *httptest.Server
	Key       *rsa.PrivateKey
	Confirmed atomic.Int32 // subscription confirmations received
	Fetched   atomic.Int32 // certificate downloads
}

// HostPattern matches the stand-in's host (for webhooks.New's snsHostPattern).
var HostPattern = regexp.MustCompile(`^127\.0\.0\.1$`)

// NewSNS starts the stand-in with a self-signed certificate of a new 2048-bit key.
func NewSNS(tb testing.TB) *SNS {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s := &SNS{Key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/SimpleNotificationService-test.pem", func(w http.ResponseWriter, r *http.Request) {
		s.Fetched.Add(1)
		w.Write(certPEM)
	})
	mux.HandleFunc("/confirm", func(w http.ResponseWriter, r *http.Request) {
		s.Confirmed.Add(1)
		w.Write([]byte("<ConfirmSubscriptionResponse/>"))
	})
	s.Server = httptest.NewTLSServer(mux)
	tb.Cleanup(s.Server.Close)
	return s
}

// CertURL is the SigningCertURL of the stand-in's messages.
func (s *SNS) CertURL() string { return s.Server.URL + "/SimpleNotificationService-test.pem" }

// Message is an SNS message; Sign fills Signature, SigningCertURL and the defaults.
type Message struct {
	Type             string
	MessageId        string
	Token            string `json:",omitempty"`
	TopicArn         string
	Subject          string `json:",omitempty"`
	Message          string
	Timestamp        string
	SignatureVersion string
	Signature        string
	SigningCertURL   string
	SubscribeURL     string `json:",omitempty"`
}

var messageSeq atomic.Int64

// Notification returns a signed Notification of payload (an SES event, marshalled to
// JSON) on topic, SignatureVersion version ("1" or "2").
func (s *SNS) Notification(tb testing.TB, topic, version string, payload any) []byte {
	tb.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		tb.Fatal(err)
	}
	return s.Sign(tb, Message{Type: "Notification", TopicArn: topic, Message: string(b), SignatureVersion: version})
}

// Sign signs m (with defaults for its id, timestamp and certificate URL) and returns
// the JSON SNS posts.
func (s *SNS) Sign(tb testing.TB, m Message) []byte {
	tb.Helper()
	if m.MessageId == "" {
		m.MessageId = fmt.Sprintf("msg-%d", messageSeq.Add(1))
	}
	if m.Timestamp == "" {
		m.Timestamp = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	}
	if m.SigningCertURL == "" {
		m.SigningCertURL = s.CertURL()
	}
	if m.SignatureVersion == "" {
		m.SignatureVersion = "2"
	}
	canon := "Message\n" + m.Message + "\nMessageId\n" + m.MessageId + "\n"
	if m.Type == "Notification" {
		if m.Subject != "" {
			canon += "Subject\n" + m.Subject + "\n"
		}
		canon += "Timestamp\n" + m.Timestamp + "\nTopicArn\n" + m.TopicArn + "\nType\n" + m.Type + "\n"
	} else {
		canon += "SubscribeURL\n" + m.SubscribeURL + "\nTimestamp\n" + m.Timestamp + "\nToken\n" + m.Token +
			"\nTopicArn\n" + m.TopicArn + "\nType\n" + m.Type + "\n"
	}
	var sig []byte
	var err error
	if m.SignatureVersion == "1" {
		d := sha1.Sum([]byte(canon))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.Key, crypto.SHA1, d[:])
	} else {
		d := sha256.Sum256([]byte(canon))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.Key, crypto.SHA256, d[:])
	}
	if err != nil {
		tb.Fatal(err)
	}
	m.Signature = base64.StdEncoding.EncodeToString(sig)
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// SendGrid signs event webhook requests.
type SendGrid struct{ Key *ecdsa.PrivateKey }

// NewSendGrid makes a P-256 key.
func NewSendGrid(tb testing.TB) *SendGrid {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return &SendGrid{Key: k}
}

// PublicKey is the verification key as SendGrid shows it: base64 of the DER.
func (s *SendGrid) PublicKey(tb testing.TB) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(&s.Key.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// Headers returns the signature and timestamp headers of body sent at t.
func (s *SendGrid) Headers(tb testing.TB, body []byte, t time.Time) map[string]string {
	tb.Helper()
	ts := strconv.FormatInt(t.Unix(), 10)
	d := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, s.Key, d[:])
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]string{"X-Twilio-Email-Event-Webhook-Signature": base64.StdEncoding.EncodeToString(sig),
		"X-Twilio-Email-Event-Webhook-Timestamp": ts}
}

// Mailgun returns the body Mailgun posts for eventData, signed with key at t.
func Mailgun(tb testing.TB, key []byte, t time.Time, eventData any) []byte {
	tb.Helper()
	tok := make([]byte, 25)
	rand.Read(tok)
	ts, token := strconv.FormatInt(t.Unix(), 10), hex.EncodeToString(tok)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(ts + token))
	b, err := json.Marshal(map[string]any{
		"signature":  map[string]string{"timestamp": ts, "token": token, "signature": hex.EncodeToString(mac.Sum(nil))},
		"event-data": eventData})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

package linktoken_test

import (
	"fmt"
	"time"

	"consentmail/preferences/linktoken"
)

// An unsubscribe link names one subscriber, the lists a mail was sent for and its
// campaign; it verifies only with the key that signed it and for its own purpose.
func ExampleUnsubscribe() {
	signer := linktoken.NewSigner([]byte("a key derived from the root secret, 32+ bytes"))
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	token := linktoken.Unsubscribe(signer, "sub_0123", []string{"news", "offers"}, "cmp_42", now)

	link, err := linktoken.VerifyUnsubscribe(signer, token, now.Add(24*time.Hour))
	fmt.Println(link.Subscriber, link.Lists, link.Campaign, err)
	_, err = linktoken.VerifyPreferences(signer, token, now)
	fmt.Println("as a preference link:", err != nil)
	// Output:
	// sub_0123 [news offers] cmp_42 <nil>
	// as a preference link: true
}

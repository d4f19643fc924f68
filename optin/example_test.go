package optin_test

import (
	"fmt"

	"consentmail/optin"
)

// CONSENTMAIL_SIGNUP_RATE is parsed once, at start; a malformed value stops the start.
func ExampleParseRate() {
	r, err := optin.ParseRate("10/min")
	fmt.Println(r, err)
	_, err = optin.ParseRate("ten a minute")
	fmt.Println(err != nil)
	// Output:
	// 10/min <nil>
	// true
}

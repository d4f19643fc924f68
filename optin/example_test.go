package optin_test

import (
	"fmt"

	"consentmail/optin"
)

func ExampleNormaliseEmail() {
	addr, key, err := optin.NormaliseEmail("Ana.Person@Bücher.Example")
	fmt.Println(addr, key, err)
	_, _, err = optin.NormaliseEmail("ana@example.org\r\nBcc: victim@example.org")
	fmt.Println(err)
	// Output:
	// Ana.Person@xn--bcher-kva.example ana.person@xn--bcher-kva.example <nil>
	// not a valid email address
}

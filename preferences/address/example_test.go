package address_test

import (
	"fmt"

	"consentmail/preferences/address"
)

func ExampleNormalise() {
	addr, key, err := address.Normalise("Ana.Person@Bücher.Example")
	fmt.Println(addr, key, err)
	fmt.Println(address.Mask(addr))
	_, _, err = address.Normalise("ana@example.org\r\nBcc: victim@example.org")
	fmt.Println(err)
	// Output:
	// Ana.Person@xn--bcher-kva.example ana.person@xn--bcher-kva.example <nil>
	// A***@xn--bcher-kva.example
	// not a valid email address
}

package mailer

import "math/bits"

// A body part goes as it is, declared 7bit, when it can: nothing to encode, and nothing
// a relay may ever convert, which would break a DKIM signature (RFC 6376, 5.3).
// Campaigns in English are mostly such; anything else is quoted-printable.

// longestLine is the longest line RFC 5322 allows, CRLF not counted.
const longestLine = 998

// appendSevenBit appends s with its line breaks made CRLF and reports true when s may
// go so in a 7bit part (RFC 2045, 2.7): ASCII without NUL, CR only before LF, lines of
// at most longestLine octets. Otherwise it returns dst as it was and false. (A space
// ending a line, such as the signature's "-- ", stays: quoted-printable protects it
// from transports that strip it, but none on the path of SMTP should, and the DKIM
// signatures this service makes, relaxed, do not cover it.) One pass, eight bytes at a
// time up to the next byte that matters.
func appendSevenBit(dst []byte, s string) ([]byte, bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	from := len(dst)
	line := 0 // start of the current line, not yet in dst
	for i := 0; i < len(s); i++ {
		if i+8 <= len(s) {
			v := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			// The high bit of each byte over 127, and of each byte under 14 (NUL, CR,
			// LF and other controls) by the classic test for a byte under n: it misses
			// none, and the lowest it marks is one. A tab or other allowed control is
			// then looked at alone, and passed.
			special := (v | (v-14*ones)&^v) & highs
			if special == 0 {
				i += 7
				continue
			}
			i += bits.TrailingZeros64(special) / 8
		}
		switch c := s[i]; {
		case c == '\n':
			end := i
			if end > line && s[end-1] == '\r' {
				end--
			}
			if end-line > longestLine {
				return dst[:from], false
			}
			dst = append(append(dst, s[line:end]...), '\r', '\n')
			line = i + 1
		case c == '\r' && (i+1 == len(s) || s[i+1] != '\n'), c == 0, c >= 0x80:
			return dst[:from], false
		}
	}
	if len(s)-line > longestLine {
		return dst[:from], false
	}
	return append(dst, s[line:]...), true
}

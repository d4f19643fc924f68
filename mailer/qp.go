package mailer

// qpPlain marks the bytes quoted-printable leaves as they are: printable ASCII but '='.
var qpPlain = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = c != '='
	}
	return t
}()

// appendQP appends s encoded as quoted-printable (RFC 2045 §6.7) for a text body: line
// breaks (LF or CRLF) become CRLF, '=', control and 8-bit bytes become =XX, a space or
// tab ending a line is encoded, and lines are broken softly ("=" CRLF) to stay within
// 76 characters. mime/quotedprintable does the same a byte at a time through a
// writer; this copies runs of plain bytes at once, which matters on the hot path of
// every campaign message. Its output is checked against mime/quotedprintable's reader
// in qp_test.go.
func appendQP(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	const maxContent = 75 // plus the "=" of a soft break: 76
	line := 0
	for i := 0; i < len(s); {
		// A run of bytes that stay as they are and fit on the line, spaces and tabs
		// included when something other than a line break follows them.
		j, end := i, min(len(s), i+maxContent-line)
		for j < end {
			c := s[j]
			if qpPlain[c] || (c == ' ' || c == '\t') && j+1 < len(s) && s[j+1] != '\n' && s[j+1] != '\r' {
				j++
				continue
			}
			break
		}
		if j > i {
			dst = append(dst, s[i:j]...)
			line += j - i
			i = j
			continue
		}
		c := s[i]
		switch {
		case c == '\n':
			dst = append(dst, '\r', '\n')
			line = 0
			i++
			continue
		case c == '\r' && i+1 < len(s) && s[i+1] == '\n':
			dst = append(dst, '\r', '\n')
			line = 0
			i += 2
			continue
		}
		width := 3
		literal := false
		if qpPlain[c] || c == ' ' || c == '\t' {
			// Only here when it does not fit, or a space or tab ends a line (encoded:
			// transports may strip trailing white space).
			literal = qpPlain[c] || (i+1 < len(s) && s[i+1] != '\n' && !(s[i+1] == '\r' && i+2 < len(s) && s[i+2] == '\n'))
			if literal {
				width = 1
			}
		}
		if line+width > maxContent {
			dst = append(dst, '=', '\r', '\n')
			line = 0
		}
		if literal {
			dst = append(dst, c)
		} else {
			dst = append(dst, '=', hex[c>>4], hex[c&15])
		}
		line += width
		i++
	}
	return dst
}

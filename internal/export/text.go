package export

import "unicode/utf8"

// appendTsharkString appends s as tshark 4.0 prints a string field with
// -T fields: valid UTF-8 printable text as is, control characters as C escapes
// (\n, \t, \\xNN ...), and each invalid UTF-8 byte as U+FFFD.
func appendTsharkString(b, s []byte) []byte {
	for len(s) > 0 {
		c := s[0]
		if c < utf8.RuneSelf {
			switch {
			case c == '\\':
				b = append(b, '\\', '\\')
			case c >= 0x20 && c < 0x7f:
				b = append(b, c)
			case c == '\a':
				b = append(b, '\\', 'a')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\v':
				b = append(b, '\\', 'v')
			default:
				b = append(b, '\\', 'x', hexdigits[c>>4], hexdigits[c&0xf])
			}
			s = s[1:]
			continue
		}
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[:n]...)
		}
		s = s[n:]
	}
	return b
}

// appendCSVText appends s as a CSV cell, quoting it when it holds a comma,
// quote or line break (as pandas does).
func appendCSVText(b, s []byte) []byte {
	need := false
	for _, c := range s {
		if c == ',' || c == '"' || c == '\n' || c == '\r' {
			need = true
			break
		}
	}
	if !need {
		return append(b, s...)
	}
	b = append(b, '"')
	for _, c := range s {
		if c == '"' {
			b = append(b, '"')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

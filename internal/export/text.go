package export

import "unicode/utf8"

// appendTsharkString appends s as tshark 4.0 prints a string field with
// -T fields (measured, see testdata): the string ends at the first NUL; \b, \t,
// \n, \f and \r become backslash escapes; other bytes, double quotes and
// backslashes included, are written as they are, except that each byte that is
// not part of valid UTF-8 becomes U+FFFD.
func appendTsharkString(b, s []byte) []byte {
	for len(s) > 0 {
		c := s[0]
		if c < utf8.RuneSelf {
			switch c {
			case 0:
				return b
			case '\b':
				b = append(b, '\\', 'b')
			case '\t':
				b = append(b, '\\', 't')
			case '\n':
				b = append(b, '\\', 'n')
			case '\f':
				b = append(b, '\\', 'f')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, c)
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

package detect

import (
	"strings"
	"testing"
)

// TestPrintable: names are shown as text, control bytes and invalid UTF-8
// escaped, cut at n with an ellipsis, whether the fast path for printable
// ASCII takes them or not.
func TestPrintable(t *testing.T) {
	long := strings.Repeat("ward/3/spo2/", 20)
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"ward/3/spo2", 64, "ward/3/spo2"},
		{"", 64, ""},
		{long, 16, long[:16] + "…"},
		{"ward\x00/3\x7f", 64, `ward\x00/3\x7f`},
		{"bett/zwölf", 64, "bett/zwölf"},
		{"a\xffb", 64, `a\xffb`},
		{"zwölf/" + long, 8, "zwölf/" + long[:1] + "…"},
		{"ab\ncdef", 3, `ab\x0a…`},
	} {
		if got := printable(c.in, c.n); got != c.want {
			t.Errorf("printable(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

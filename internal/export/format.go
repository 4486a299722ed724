package export

import (
	"encoding/hex"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/iomtguard/iomtguard/internal/dataset"
)

// formatter writes ICU CSV values in a dialect. Every method takes the column
// because the released dialect's text depends on it: pandas turned columns
// that had empty cells into floats (23.0), printed times with Python's float
// repr (1.3e-05), and filled empty cells with 0 or 0.0.
type formatter struct{ dialect Dialect }

// releasedFloat marks the columns the released files hold as floats.
var releasedFloat = func() (m [dataset.NumColumns]bool) {
	for _, c := range []int{dataset.ColConnFin, dataset.ColConnRst, dataset.ColConnSynAck, dataset.ColConnSyn,
		dataset.ColClientIDLen, dataset.ColConackVal, dataset.ColConflagPasswd, dataset.ColConflagQoS,
		dataset.ColConflagReserved, dataset.ColConflagRetain, dataset.ColConflagWillflag, dataset.ColDupflag,
		dataset.ColKalive, dataset.ColMsg, dataset.ColQoS, dataset.ColRetain, dataset.ColTopicLen, dataset.ColVer,
		dataset.ColWillmsgLen, dataset.ColTimeDelta, dataset.ColTimeRelative, dataset.ColTCPTimeDelta} {
		m[c] = true
	}
	return
}()

func (x *formatter) released() bool { return x.dialect == DialectReleased }

func (x *formatter) quote(b []byte) []byte {
	if x.dialect == DialectTshark {
		return append(b, '"')
	}
	return b
}

// absent writes a field the frame does not have.
func (x *formatter) absent(b []byte, c int) []byte {
	if !x.released() {
		return b
	}
	if releasedFloat[c] {
		return append(b, "0.0"...)
	}
	return append(b, '0')
}

func (x *formatter) uint(b []byte, c int, v uint64) []byte {
	if x.dialect == DialectTshark {
		if v < 10 {
			return append(b, '"', byte('0'+v), '"')
		}
		b = append(b, '"')
		b = appendUint(b, v)
		return append(b, '"')
	}
	b = appendUint(b, v)
	if releasedFloat[c] {
		b = append(b, ".0"...)
	}
	return b
}

func (x *formatter) optUint(b []byte, c int, has bool, v uint64) []byte {
	if !has {
		return x.absent(b, c)
	}
	return x.uint(b, c, v)
}

func (x *formatter) bool(b []byte, c int, v bool) []byte {
	if v {
		return x.uint(b, c, 1)
	}
	return x.uint(b, c, 0)
}

func (x *formatter) optBool(b []byte, c int, has, v bool) []byte {
	if !has {
		return x.absent(b, c)
	}
	return x.bool(b, c, v)
}

// expert writes tshark's tcp.connection.* fields: present only on the frames
// they describe.
func (x *formatter) expert(b []byte, c int, v bool) []byte {
	if !v {
		return x.absent(b, c)
	}
	return x.uint(b, c, 1)
}

const hexdigits = "0123456789abcdef"

func (x *formatter) hex(b []byte, c int, v uint64, width int) []byte {
	if x.released() {
		width = 8
	}
	b = x.quote(b)
	b = append(b, '0', 'x')
	for i := width - 1; i >= 0; i-- {
		b = append(b, hexdigits[v>>(4*uint(i))&0xf])
	}
	return x.quote(b)
}

func (x *formatter) optHex(b []byte, c int, has bool, v uint64, width int) []byte {
	if !has {
		return x.absent(b, c)
	}
	return x.hex(b, c, v, width)
}

// bytes writes a bytes field: tshark's plain hex (or <MISSING> when empty);
// in the released dialect the payload as colon-separated hex and mqtt.msg as
// the text it held.
func (x *formatter) bytes(b []byte, c int, v []byte) []byte {
	if x.dialect == DialectTshark && len(v) > 0 {
		n := len(b)
		b = append(b, make([]byte, 2*len(v)+2)...)
		b[n] = '"'
		hex.Encode(b[n+1:], v)
		b[len(b)-1] = '"'
		return b
	}
	if x.released() {
		if c == dataset.ColMsg {
			return appendReleasedText(b, v)
		}
		if len(v) == 0 {
			return append(b, '0')
		}
		for i, ch := range v {
			if i > 0 {
				b = append(b, ':')
			}
			b = append(b, hexdigits[ch>>4], hexdigits[ch&0xf])
		}
		return b
	}
	if len(v) == 0 {
		return append(b, `"<MISSING>"`...) // tshark's text for an empty bytes field
	}
	b = append(b, '"')
	for _, ch := range v {
		b = append(b, hexdigits[ch>>4], hexdigits[ch&0xf])
	}
	return append(b, '"')
}

// optString writes a string field as tshark does, or as the released files hold it.
func (x *formatter) optString(b []byte, c int, has bool, s []byte) []byte {
	if !has {
		return x.absent(b, c)
	}
	if x.released() {
		if len(s) == 0 {
			return append(b, '0')
		}
		return appendCSVText(b, s)
	}
	b = append(b, '"')
	b = appendTsharkString(b, s)
	return append(b, '"')
}

// label writes the class and label columns.
func (x *formatter) label(b []byte, s []byte) []byte {
	if len(s) == 0 {
		return b
	}
	if x.released() {
		return appendCSVText(b, s)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// seconds writes ns as seconds: tshark's nine decimals, or Python's repr.
func (x *formatter) seconds(b []byte, c int, ns int64) []byte {
	if x.released() {
		return appendPyFloat(b, float64(ns)/1e9)
	}
	b = x.quote(b)
	if ns < 0 {
		b = append(b, '-')
		ns = -ns
	}
	b = appendUint(b, uint64(ns/1e9))
	b = append(b, '.')
	frac := uint64(ns % 1e9)
	var d [9]byte
	for i := 7; i >= 1; i -= 2 {
		q := frac / 100
		r := frac - q*100
		d[i], d[i+1] = digitPairs[2*r], digitPairs[2*r+1]
		frac = q
	}
	d[0] = byte('0' + frac)
	b = append(b, d[:]...)
	return x.quote(b)
}

func (x *formatter) ip4(b []byte, a [4]byte) []byte {
	b = x.quote(b)
	for i, v := range a {
		if i > 0 {
			b = append(b, '.')
		}
		b = appendUint(b, uint64(v))
	}
	return x.quote(b)
}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// appendUint appends v in decimal, two digits at a time.
func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 10:
		return append(b, byte('0'+v))
	case v < 100:
		return append(b, digitPairs[2*v], digitPairs[2*v+1])
	case v < 10000:
		hi, lo := v/100, v%100
		if hi < 10 {
			return append(b, byte('0'+hi), digitPairs[2*lo], digitPairs[2*lo+1])
		}
		return append(b, digitPairs[2*hi], digitPairs[2*hi+1], digitPairs[2*lo], digitPairs[2*lo+1])
	}
	var d [20]byte
	i := len(d)
	for v >= 100 {
		q := v / 100
		r := v - q*100
		i -= 2
		d[i], d[i+1] = digitPairs[2*r], digitPairs[2*r+1]
		v = q
	}
	if v >= 10 {
		i -= 2
		d[i], d[i+1] = digitPairs[2*v], digitPairs[2*v+1]
	} else {
		i--
		d[i] = byte('0' + v)
	}
	return append(b, d[i:]...)
}

// appendPyFloat appends v as Python's repr(float) does: the shortest digits
// that round-trip, fixed notation for 1e-4 <= |v| < 1e16 (with ".0" when
// integral), scientific otherwise ("1.3e-05").
func appendPyFloat(b []byte, v float64) []byte {
	if v == 0 {
		if math.Signbit(v) {
			return append(b, "-0.0"...)
		}
		return append(b, "0.0"...)
	}
	abs := math.Abs(v)
	if abs >= 1e-4 && abs < 1e16 {
		start := len(b)
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
		for _, ch := range b[start:] {
			if ch == '.' {
				return b
			}
		}
		return append(b, ".0"...)
	}
	return strconv.AppendFloat(b, v, 'e', -1, 64)
}

// appendReleasedText writes an mqtt.msg value as the released files hold it:
// the payload text, which pandas read as a number when it was one.
func appendReleasedText(b, v []byte) []byte {
	if len(v) == 0 {
		return append(b, "0.0"...)
	}
	if utf8.Valid(v) {
		if f, err := strconv.ParseFloat(string(v), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return appendPyFloat(b, f)
		}
	}
	return appendCSVText(b, v)
}

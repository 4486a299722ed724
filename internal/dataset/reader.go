package dataset

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Row is one frame of the dataset. Times are in seconds as in the file. For
// the released files an absent value reads as 0 (they were filled with 0).
type Row struct {
	Line int // 1-based line in the file

	TimeDelta, TimeRelative, TCPTimeDelta float64
	FrameLen                              int
	Src, Dst                              netip.Addr
	SrcPort, DstPort                      uint16
	TCPFlags                              uint16
	TCPLen                                int
	TCPAck                                uint32
	ConnFin, ConnRst, ConnSynAck, ConnSyn bool
	HdrLen                                int
	Payload                               []byte
	PDUSize                               int
	Window                                int
	Checksum                              uint16
	IPProto, TTL                          uint8

	// MQTT (first occurrence in the frame). MsgType 0 means no MQTT.
	MsgType     uint8
	HdrFlags    uint8
	MQTTLen     int
	ClientID    string
	ClientIDLen int
	ConackFlags uint8
	ConackVal   uint8
	Conflags    uint8
	Dup, Retain bool
	QoS         uint8
	KeepAlive   int
	Msg         []byte
	Topic       string
	TopicLen    int
	Ver         uint8
	WillMsgLen  int

	Class, Label string

	// Has records which columns the file has and had a non-empty value in.
	Has [NumColumns]bool
}

// RowError reports a row that could not be read; the reader skips it and goes on.
type RowError struct {
	Line   int
	Column string
	Value  string
	Reason string
}

func (e *RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("dataset: line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("dataset: line %d: column %s: %q: %s", e.Line, e.Column, e.Value, e.Reason)
}

// ErrNotDataset reports a CSV whose header has none of the dataset's columns.
var ErrNotDataset = errors.New("dataset: not an ICU dataset CSV (no frame.time_relative or frame.time_delta column)")

// Reader reads dataset rows.
type Reader struct {
	r    *csv.Reader
	cols []int // file column -> schema column (-1 if unknown)
	line int
	// Released is true for the released dataset files (recognised by their
	// tcp.connection.sack column): their mqtt.msg holds payload text, not hex.
	Released bool
}

// Looks reports whether head (the first bytes of a file) looks like a dataset
// CSV header.
func Looks(head []byte) bool {
	line := head
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		line = head[:i]
	}
	return bytes.Contains(line, []byte("frame.time_relative")) || bytes.Contains(line, []byte("frame.time_delta")) ||
		(bytes.Contains(line, []byte("frame.len")) && bytes.Contains(line, []byte("ip.src")))
}

// readBuffer is a Reader's buffer. Every input given is open from the
// start (they are merged in time order), so each waiting for its turn holds
// one: at 1 MiB, 200 CSVs of a capture split by time held 200 MiB, past
// analyze's memory target, and took three times as long as the same rows
// in one file; at 64 KiB they hold 13 MiB and a single large CSV reads as
// fast.
const readBuffer = 64 << 10

// NewReader reads the header and returns a Reader. Columns may be in any order
// and any subset of the schema.
func NewReader(r io.Reader) (*Reader, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, readBuffer))
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("dataset: read header: %w", err)
	}
	rd := &Reader{r: cr, line: 1}
	known := 0
	for _, h := range head {
		name := strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if name == "tcp.connection.sack" {
			rd.Released = true
		}
		i, ok := ColumnIndex(name)
		if !ok {
			i = -1
		} else {
			known++
		}
		rd.cols = append(rd.cols, i)
	}
	has := func(c int) bool {
		for _, x := range rd.cols {
			if x == c {
				return true
			}
		}
		return false
	}
	if !has(ColTimeRelative) && !has(ColTimeDelta) {
		return nil, ErrNotDataset
	}
	return rd, nil
}

// Next reads the next row into r. It returns io.EOF at the end and a *RowError
// for a row it skipped (call Next again to go on).
func (rd *Reader) Next(r *Row) error {
	rec, err := rd.r.Read()
	rd.line++
	if err != nil {
		if err == io.EOF {
			return io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return &RowError{Line: pe.Line, Reason: pe.Err.Error()}
		}
		return err
	}
	*r = Row{Line: rd.line}
	if len(rec) != len(rd.cols) {
		return &RowError{Line: rd.line, Reason: fmt.Sprintf("%d cells, header has %d", len(rec), len(rd.cols))}
	}
	for i, v := range rec {
		c := rd.cols[i]
		if c < 0 {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if rd.Released && v == "0" && isHexColumn(c) {
			continue // a 0-filled empty cell: tshark writes present values as 0x%08x
		}
		if c == ColMsg && rd.Released {
			// Payload text (pandas may have read it as a number: "154.0").
			if v != "0.0" && v != "0" {
				r.Msg = []byte(v)
			}
			r.Has[c] = true
			continue
		}
		if err := r.set(c, v); err != nil {
			return &RowError{Line: rd.line, Column: Header[c], Value: v, Reason: err.Error()}
		}
		r.Has[c] = true
	}
	r.finish()
	return nil
}

// finish undoes the released files' 0-filling where the other columns show
// that a value was absent.
func (r *Row) finish() {
	if r.ClientID == "0" && r.ClientIDLen != 1 {
		r.ClientID = ""
	}
	if r.Topic == "0" && r.TopicLen != 1 {
		r.Topic = ""
	}
}

var errBadNumber = errors.New("not a number")

// num parses a decimal, float or 0x-prefixed hex value.
func num(s string) (float64, error) {
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		u, err := strconv.ParseUint(s[2:], 16, 64)
		if err != nil {
			return 0, errBadNumber
		}
		return float64(u), nil
	}
	switch s {
	case "True", "true":
		return 1, nil
	case "False", "false":
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		if strings.EqualFold(s, "nan") {
			return 0, nil // pandas writes NaN for an empty cell it did not fill
		}
		return 0, errBadNumber
	}
	return f, nil
}

func intIn(s string, lo, hi float64) (int, error) {
	f, err := num(s)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || f < lo || f > hi {
		return 0, fmt.Errorf("want an integer in [%g, %g]", lo, hi)
	}
	return int(f), nil
}

// hexBytes parses tshark's bytes formats: "10:23:00", "102300", or "0" (filled).
func hexBytes(s string) ([]byte, error) {
	if s == "0" || s == "0.0" {
		return nil, nil
	}
	s = strings.ReplaceAll(s, ":", "")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("not hex bytes")
	}
	return b, nil
}

func (r *Row) set(c int, v string) error {
	if i := strings.IndexByte(v, ','); i >= 0 && c != ColClientID && c != ColTopic && c != ColClass && c != ColLabel {
		v = v[:i] // a tshark export with -E occurrence=a: keep the first value
	}
	var err error
	var n int
	switch c {
	case ColTimeDelta, ColTimeRelative, ColTCPTimeDelta:
		var f float64
		f, err = num(v)
		if err == nil && f < 0 {
			err = errors.New("negative time")
		}
		switch c {
		case ColTimeDelta:
			r.TimeDelta = f
		case ColTimeRelative:
			r.TimeRelative = f
		default:
			r.TCPTimeDelta = f
		}
	case ColIPSrc, ColIPDst:
		var a netip.Addr
		a, err = netip.ParseAddr(v)
		if err != nil {
			if v == "0" {
				err = nil
			} else {
				err = errors.New("not an IP address")
			}
		}
		if c == ColIPSrc {
			r.Src = a
		} else {
			r.Dst = a
		}
	case ColPayload:
		r.Payload, err = hexBytes(v)
	case ColMsg:
		r.Msg, err = hexBytes(v)
	case ColClientID:
		r.ClientID = v
	case ColTopic:
		r.Topic = v
	case ColClass:
		r.Class = v
	case ColLabel:
		r.Label = v
	default:
		n, err = intIn(v, 0, math.MaxUint32)
		if err != nil {
			return err
		}
		switch c {
		case ColFrameLen:
			r.FrameLen = n
		case ColSrcPort, ColDstPort:
			if n > 65535 {
				return errors.New("port out of range")
			}
			if c == ColSrcPort {
				r.SrcPort = uint16(n)
			} else {
				r.DstPort = uint16(n)
			}
		case ColTCPFlags:
			r.TCPFlags = uint16(n & 0x0fff)
		case ColTCPLen:
			r.TCPLen = n
		case ColTCPAck:
			r.TCPAck = uint32(n)
		case ColConnFin:
			r.ConnFin = n != 0
		case ColConnRst:
			r.ConnRst = n != 0
		case ColConnSynAck:
			r.ConnSynAck = n != 0
		case ColConnSyn:
			r.ConnSyn = n != 0
		case ColHdrLen:
			r.HdrLen = n
		case ColPDUSize:
			r.PDUSize = n
		case ColWindow:
			r.Window = n
		case ColChecksum:
			r.Checksum = uint16(n)
		case ColIPProto:
			r.IPProto = uint8(n)
		case ColIPTTL:
			r.TTL = uint8(n)
		case ColClientIDLen:
			r.ClientIDLen = n
		case ColConackFlags:
			r.ConackFlags = uint8(n)
		case ColConackVal:
			r.ConackVal = uint8(n)
		case ColConflags:
			r.Conflags = uint8(n)
		case ColDupflag:
			r.Dup = n != 0
		case ColRetain:
			r.Retain = n != 0
		case ColQoS:
			r.QoS = uint8(n)
		case ColHdrflags:
			r.HdrFlags = uint8(n)
		case ColKalive:
			r.KeepAlive = n
		case ColMQTTLen:
			r.MQTTLen = n
		case ColMsgtype:
			if n > 15 {
				return errors.New("MQTT type above 15")
			}
			r.MsgType = uint8(n)
		case ColTopicLen:
			r.TopicLen = n
		case ColVer:
			r.Ver = uint8(n)
		case ColWillmsgLen:
			r.WillMsgLen = n
		}
	}
	return err
}

// isHexColumn reports the columns tshark writes in hex.
func isHexColumn(c int) bool {
	switch c {
	case ColTCPFlags, ColChecksum, ColConackFlags, ColConflags, ColHdrflags:
		return true
	}
	return false
}

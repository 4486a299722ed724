package dataset

import (
	"encoding/csv"
	"errors"
	"io"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

const excerpt = "../../testdata/icu-dataset/environmentMonitoring_excerpt.csv"

// TestExcerptRecords reads the 38-row excerpt and checks every parsed record
// against its raw columns, parsed independently here.
func TestExcerptRecords(t *testing.T) {
	f, err := os.Open(excerpt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := os.Open(excerpt)
	defer f2.Close()
	rd, err := NewReader(f2)
	if err != nil {
		t.Fatal(err)
	}
	if !rd.Released {
		t.Error("the released header (tcp.connection.sack) was not recognised")
	}
	head := raw[0]
	col := func(row []string, name string) string {
		for i, h := range head {
			if h == name {
				return row[i]
			}
		}
		t.Fatalf("no column %s", name)
		return ""
	}
	num := func(s string) float64 {
		if strings.HasPrefix(s, "0x") {
			u, err := strconv.ParseUint(s[2:], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return float64(u)
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return v
	}
	n := 0
	for _, want := range raw[1:] {
		var r Row
		if err := rd.Next(&r); err != nil {
			t.Fatalf("row %d: %v", n+1, err)
		}
		n++
		checks := []struct {
			name string
			got  float64
		}{
			{"frame.time_delta", r.TimeDelta}, {"frame.time_relative", r.TimeRelative}, {"frame.len", float64(r.FrameLen)},
			{"tcp.srcport", float64(r.SrcPort)}, {"tcp.dstport", float64(r.DstPort)}, {"tcp.flags", float64(r.TCPFlags)},
			{"tcp.time_delta", r.TCPTimeDelta}, {"tcp.len", float64(r.TCPLen)}, {"tcp.ack", float64(r.TCPAck)},
			{"tcp.hdr_len", float64(r.HdrLen)}, {"tcp.pdu.size", float64(r.PDUSize)}, {"tcp.window_size_value", float64(r.Window)},
			{"tcp.checksum", float64(r.Checksum)}, {"mqtt.clientid_len", float64(r.ClientIDLen)},
			{"mqtt.conack.val", float64(r.ConackVal)}, {"mqtt.hdrflags", float64(r.HdrFlags)}, {"mqtt.kalive", float64(r.KeepAlive)},
			{"mqtt.len", float64(r.MQTTLen)}, {"mqtt.msgtype", float64(r.MsgType)}, {"mqtt.qos", float64(r.QoS)},
			{"mqtt.topic_len", float64(r.TopicLen)}, {"mqtt.ver", float64(r.Ver)}, {"mqtt.willmsg_len", float64(r.WillMsgLen)},
			{"ip.proto", float64(r.IPProto)}, {"ip.ttl", float64(r.TTL)},
		}
		for _, c := range checks {
			if w := num(col(want, c.name)); c.got != w {
				t.Errorf("row %d %s: got %v, want %v", n, c.name, c.got, w)
			}
		}
		if got, w := r.Src, netip.MustParseAddr(col(want, "ip.src")); got != w {
			t.Errorf("row %d ip.src: got %v, want %v", n, got, w)
		}
		if got, w := r.Dst, netip.MustParseAddr(col(want, "ip.dst")); got != w {
			t.Errorf("row %d ip.dst: got %v, want %v", n, got, w)
		}
		hexPayload := strings.ReplaceAll(col(want, "tcp.payload"), ":", "")
		if got := fmtHex(r.Payload); got != hexPayload {
			t.Errorf("row %d tcp.payload: got %s, want %s", n, got, hexPayload)
		}
		if w := col(want, "mqtt.topic"); w != "0" && r.Topic != w {
			t.Errorf("row %d mqtt.topic: got %q, want %q", n, r.Topic, w)
		}
		if w := col(want, "mqtt.clientid"); w != "0" && r.ClientID != w {
			t.Errorf("row %d mqtt.clientid: got %q, want %q", n, r.ClientID, w)
		}
		if r.Class != col(want, "class") || r.Label != col(want, "label") {
			t.Errorf("row %d class/label: got %q/%q", n, r.Class, r.Label)
		}
		// The payload's MQTT bytes agree with the mqtt.* columns.
		if len(r.Payload) > 0 && r.Payload[0]>>4 != r.MsgType {
			t.Errorf("row %d: payload type %d, mqtt.msgtype %d", n, r.Payload[0]>>4, r.MsgType)
		}
		if r.ConnFin || r.ConnRst || r.ConnSyn || r.ConnSynAck {
			t.Errorf("row %d: tcp.connection.* set on a data frame", n)
		}
	}
	if n != 38 {
		t.Fatalf("read %d rows, want 38", n)
	}
	var r Row
	if err := rd.Next(&r); err != io.EOF {
		t.Fatalf("after the last row: %v, want io.EOF", err)
	}
}

func fmtHex(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func TestBadRows(t *testing.T) {
	in := "frame.time_delta,frame.time_relative,frame.len,ip.src,tcp.srcport,mqtt.msgtype\n" +
		"0.1,0.1,60,10.0.0.1,1883,3\n" +
		"x,0.2,60,10.0.0.1,1883,3\n" + // bad number
		"0.1,0.3,60,10.0.0.999,1883,3\n" + // bad address
		"0.1,0.4,60,10.0.0.1,70000,3\n" + // port out of range
		"0.1,0.5,60\n" + // short row
		"0.1,0.6,60,10.0.0.1,1883,16\n" + // no such MQTT type
		"0.1,0.7,60,10.0.0.1,1883,4\n"
	rd, err := NewReader(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var good, bad int
	var lines []int
	for {
		var r Row
		err := rd.Next(&r)
		if err == io.EOF {
			break
		}
		var re *RowError
		if errors.As(err, &re) {
			bad++
			lines = append(lines, re.Line)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		good++
	}
	if good != 2 || bad != 5 {
		t.Fatalf("good %d bad %d, want 2 and 5 (bad lines %v)", good, bad, lines)
	}
	if lines[0] != 3 {
		t.Errorf("first bad row reported on line %d, want 3", lines[0])
	}
}

func TestNotDataset(t *testing.T) {
	if _, err := NewReader(strings.NewReader("a,b,c\n1,2,3\n")); !errors.Is(err, ErrNotDataset) {
		t.Fatalf("got %v, want ErrNotDataset", err)
	}
}

func TestNumbers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
		ok   bool
	}{{"0x00000018", 24, true}, {"5.3e-05", 5.3e-05, true}, {"23.0", 23, true}, {"1", 1, true}, {"True", 1, true},
		{"nan", 0, true}, {"0xzz", 0, false}, {"abc", 0, false}, {"inf", 0, false}} {
		got, err := num(c.in)
		if (err == nil) != c.ok || (c.ok && math.Abs(got-c.want) > 0) {
			t.Errorf("num(%q) = %v, %v", c.in, got, err)
		}
	}
}

// Package export writes pipeline events in the forms researchers and SOC tools
// use: the ICU dataset CSV (tshark's field export, 52 columns) and JSON lines,
// one object per MQTT control packet.
package export

import (
	"bufio"
	"io"
	"strconv"

	"github.com/iomtguard/iomtguard/internal/dataset"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/packet"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// Dialect is how the ICU CSV's values are written.
type Dialect uint8

const (
	// DialectTshark writes what `tshark -T fields -E separator=, -E quote=d
	// -E occurrence=f` (Wireshark 4.0) writes: absent fields empty, strings
	// quoted, hex flags as 0x%04x / 0x%02x, bytes as plain hex, times with 9 decimals.
	DialectTshark Dialect = iota
	// DialectReleased writes what the released dataset files hold: empty
	// cells as 0, flags as 0x%08x, payloads as colon-separated hex.
	DialectReleased
)

// ICUCSV writes the ICU dataset schema, one row per frame.
type ICUCSV struct {
	pipeline.Nop
	w       *bufio.Writer
	dialect Dialect
	class   string
	label   string
	err     error
	buf     []byte
	mq      []mqttFields // MQTT packets completed in the current frame
	Rows    int64
}

// mqttFields is the first-occurrence view of one MQTT packet, copied out of the event.
type mqttFields struct {
	typ         mqtt.Type
	header      byte
	length      int
	version     mqtt.Version // connection's level from its CONNECT (tshark's runtime version)
	present     mqtt.Field
	dup, retain bool
	qos         uint8
	level       uint8
	conflags    uint8
	keepalive   uint16
	clientID    []byte
	ackFlags    uint8
	reason      uint8
	topic       []byte
	topicLen    int
	msg         []byte
	willLen     int
}

// NewICUCSV writes the header to w and returns the writer. class and label
// fill the last two columns (empty when not given).
func NewICUCSV(w io.Writer, d Dialect, class, label string) *ICUCSV {
	x := &ICUCSV{w: bufio.NewWriterSize(w, 1<<20), dialect: d, class: class, label: label}
	for i, h := range dataset.Header {
		if i > 0 {
			x.w.WriteByte(',')
		}
		x.w.WriteString(h)
	}
	x.w.WriteByte('\n')
	return x
}

// OnMQTT collects the fields the frame's row needs.
func (x *ICUCSV) OnMQTT(ev *pipeline.MQTT) {
	p := ev.Pkt
	if len(x.mq) == cap(x.mq) {
		x.mq = append(x.mq, mqttFields{})
	} else {
		x.mq = x.mq[:len(x.mq)+1]
	}
	m := &x.mq[len(x.mq)-1]
	level := ev.Session.Level
	*m = mqttFields{typ: p.Type, header: p.Header, length: p.RemainingLength, version: level, present: p.Present,
		dup: p.Dup, retain: p.Retain, qos: p.QoS, level: p.ProtocolLevel, conflags: p.ConnectFlags,
		keepalive: p.KeepAlive, ackFlags: p.AckFlags, reason: p.ReasonCode, willLen: p.WillLen,
		clientID: append(m.clientID[:0], p.ClientID...), msg: append(m.msg[:0], p.Payload...)}
	switch p.Type {
	case mqtt.PUBLISH:
		m.topic = append(m.topic[:0], p.Topic...)
		m.topicLen = len(p.Topic)
	case mqtt.SUBSCRIBE, mqtt.UNSUBSCRIBE:
		m.topic = m.topic[:0]
		if len(p.Filters) > 0 {
			m.topic = append(m.topic, p.Filters[0].Filter...)
			m.topicLen = len(p.Filters[0].Filter)
		}
	}
}

// OnFrame writes the frame's row.
func (x *ICUCSV) OnFrame(f *pipeline.Frame) {
	if x.err != nil {
		return
	}
	if f.Row != nil && len(x.mq) == 0 {
		x.writeRow(f)
	} else {
		x.writeFrame(f)
	}
	x.mq = x.mq[:0]
	x.Rows++
}

// Close flushes the output and returns the first write error.
func (x *ICUCSV) Close() error {
	if x.err != nil {
		return x.err
	}
	return x.w.Flush()
}

// first returns the first collected MQTT packet having field f (per test).
func (x *ICUCSV) first(test func(m *mqttFields) bool) *mqttFields {
	for i := range x.mq {
		if test(&x.mq[i]) {
			return &x.mq[i]
		}
	}
	return nil
}

func (x *ICUCSV) writeFrame(f *pipeline.Frame) {
	b := x.buf[:0]
	l := f.L
	tcp := f.TCP != nil && l.IsTCP()
	b = x.seconds(b, f.Delta)
	b = append(b, ',')
	b = x.seconds(b, f.Rel)
	b = append(b, ',')
	b = x.int(b, f.Len)
	b = append(b, ',')
	if l.IPVersion == 4 && (l.Status == packet.OK || l.Status == packet.Fragment || l.Src.IsValid()) {
		b = x.str(b, l.Src.String())
		b = append(b, ',')
		b = x.str(b, l.Dst.String())
	} else {
		b = x.empty(b)
		b = append(b, ',')
		b = x.empty(b)
	}
	b = append(b, ',')
	if !tcp {
		for i := ColSrcPortOffset; i < ColClientIDOffset; i++ {
			if i > ColSrcPortOffset {
				b = append(b, ',')
			}
			b = x.empty(b)
		}
	} else {
		t := &l.TCP
		s := f.TCP
		b = x.int(b, int(l.SrcPort))
		b = append(b, ',')
		b = x.int(b, int(l.DstPort))
		b = append(b, ',')
		b = x.hex(b, uint64(t.Flags), 4)
		b = append(b, ',')
		b = x.seconds(b, s.Delta)
		b = append(b, ',')
		b = x.int(b, l.PayloadLen)
		b = append(b, ',')
		b = x.int(b, int(s.RelAck))
		b = append(b, ',')
		b = x.flagIf(b, t.Flags&packet.FlagFIN != 0)
		b = append(b, ',')
		b = x.flagIf(b, t.Flags&packet.FlagRST != 0)
		b = append(b, ',')
		b = x.flagIf(b, t.Flags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK)
		b = append(b, ',')
		b = x.flagIf(b, t.Flags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN)
		for _, bit := range [...]uint16{packet.FlagACK, packet.FlagFIN, packet.FlagPSH, packet.FlagRST, packet.FlagSYN, packet.FlagURG} {
			b = append(b, ',')
			b = x.bit(b, t.Flags&bit != 0)
		}
		b = append(b, ',')
		b = x.int(b, int(t.HdrLen))
		b = append(b, ',')
		if l.PayloadLen > 0 && len(l.Payload) > 0 {
			b = x.bytes(b, l.Payload)
		} else {
			b = x.empty(b)
		}
		b = append(b, ',')
		if f.PDUSize > 0 {
			b = x.int(b, f.PDUSize)
		} else {
			b = x.empty(b)
		}
		b = append(b, ',')
		b = x.int(b, int(t.Window))
		b = append(b, ',')
		b = x.hex(b, uint64(t.Checksum), 4)
	}
	b = append(b, ',')
	b = x.mqttColumns(b)
	b = append(b, ',')
	if l.IPVersion == 4 && l.Src.IsValid() {
		b = x.int(b, int(l.IPProto))
		b = append(b, ',')
		b = x.int(b, int(l.TTL))
	} else {
		b = x.empty(b)
		b = append(b, ',')
		b = x.empty(b)
	}
	b = x.tail(b)
	x.flush(b)
}

// Column spans used by writeFrame.
const (
	ColSrcPortOffset  = dataset.ColSrcPort
	ColClientIDOffset = dataset.ColClientID
)

func (x *ICUCSV) mqttColumns(b []byte) []byte {
	has := func(f mqtt.Field) *mqttFields {
		return x.first(func(m *mqttFields) bool { return m.present&f != 0 })
	}
	// mqtt.clientid, mqtt.clientid_len
	if m := has(mqtt.FieldClientID); m != nil {
		b = x.quoted(b, m.clientID)
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	if m := has(mqtt.FieldClientIDLen); m != nil {
		b = x.int(b, len(m.clientID))
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.conack.flags: CONNACK unless the connection is MQTT 3.1.
	if m := has(mqtt.FieldAckFlags); m != nil {
		b = x.hex(b, uint64(m.ackFlags), 2)
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.conack.val: CONNACK on 3.1 and 3.1.1 connections (MQTT 5 has a reason code field instead).
	if m := x.first(func(m *mqttFields) bool {
		return m.typ == mqtt.CONNACK && m.present&mqtt.FieldReasonCode != 0 && (m.version == mqtt.V31 || m.version == mqtt.V311)
	}); m != nil {
		b = x.int(b, int(m.reason))
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.conflag.passwd, .qos, .reserved, .retain, .willflag, mqtt.conflags
	if m := has(mqtt.FieldConnectFlags); m != nil {
		fl := m.conflags
		b = x.bit(b, fl&0x40 != 0)
		b = append(b, ',')
		b = x.int(b, int(fl>>3&3))
		b = append(b, ',')
		b = x.bit(b, fl&0x01 != 0)
		b = append(b, ',')
		b = x.bit(b, fl&0x20 != 0)
		b = append(b, ',')
		b = x.bit(b, fl&0x04 != 0)
		b = append(b, ',')
		b = x.hex(b, uint64(fl), 2)
	} else {
		for i := 0; i < 6; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = x.empty(b)
		}
	}
	b = append(b, ',')
	// mqtt.dupflag: PUBLISH, and PUBREL/SUBSCRIBE/UNSUBSCRIBE on 3.1 connections.
	flagged := x.first(func(m *mqttFields) bool { return hasPublishFlags(m) })
	if flagged != nil {
		b = x.bit(b, flagged.header&8 != 0)
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.hdrflags
	if len(x.mq) > 0 {
		b = x.hex(b, uint64(x.mq[0].header), 2)
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.kalive
	if m := has(mqtt.FieldKeepAlive); m != nil {
		b = x.int(b, int(m.keepalive))
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.len
	if len(x.mq) > 0 {
		b = x.int(b, x.mq[0].length)
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.msg
	if m := has(mqtt.FieldPayload); m != nil {
		b = x.bytes(b, m.msg)
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.msgtype
	if len(x.mq) > 0 {
		b = x.int(b, int(x.mq[0].typ))
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.qos
	if flagged != nil {
		b = x.int(b, int(flagged.header>>1&3))
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.retain: PUBLISH only (3.1 PUBREL/SUBSCRIBE/UNSUBSCRIBE have a reserved bit there).
	if m := x.first(func(m *mqttFields) bool { return m.typ == mqtt.PUBLISH }); m != nil {
		b = x.bit(b, m.header&1 != 0)
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.topic, mqtt.topic_len
	if m := has(mqtt.FieldTopic); m != nil {
		b = x.quoted(b, m.topic)
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	if m := has(mqtt.FieldTopicLen); m != nil {
		b = x.int(b, m.topicLen)
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.ver
	if m := has(mqtt.FieldProtocol); m != nil {
		b = x.int(b, int(m.level))
	} else {
		b = x.empty(b)
	}
	b = append(b, ',')
	// mqtt.willmsg_len
	if m := has(mqtt.FieldWillPayloadLen); m != nil {
		b = x.int(b, m.willLen)
	} else {
		b = x.empty(b)
	}
	return b
}

func hasPublishFlags(m *mqttFields) bool {
	switch m.typ {
	case mqtt.PUBLISH:
		return true
	case mqtt.PUBREL, mqtt.SUBSCRIBE, mqtt.UNSUBSCRIBE:
		return m.version == mqtt.V31
	}
	return false
}

func (x *ICUCSV) tail(b []byte) []byte {
	b = append(b, ',')
	b = x.text(b, x.class)
	b = append(b, ',')
	b = x.text(b, x.label)
	return append(b, '\n')
}

func (x *ICUCSV) text(b []byte, s string) []byte {
	if s == "" {
		return x.empty(b)
	}
	return x.quoted(b, []byte(s))
}

func (x *ICUCSV) flush(b []byte) {
	if _, err := x.w.Write(b); err != nil && x.err == nil {
		x.err = err
	}
	x.buf = b
}

// writeRow re-writes a dataset row read from CSV input (no MQTT re-decoded).
func (x *ICUCSV) writeRow(f *pipeline.Frame) {
	r := f.Row
	b := x.buf[:0]
	for c := 0; c < dataset.NumColumns; c++ {
		if c > 0 {
			b = append(b, ',')
		}
		if !r.Has[c] && c != dataset.ColClass && c != dataset.ColLabel {
			b = x.empty(b)
			continue
		}
		b = x.rowCell(b, r, c)
	}
	b = append(b, '\n')
	x.flush(b)
}

func (x *ICUCSV) rowCell(b []byte, r *dataset.Row, c int) []byte {
	switch c {
	case dataset.ColTimeDelta:
		return x.seconds(b, int64(r.TimeDelta*1e9+0.5))
	case dataset.ColTimeRelative:
		return x.seconds(b, int64(r.TimeRelative*1e9+0.5))
	case dataset.ColTCPTimeDelta:
		return x.seconds(b, int64(r.TCPTimeDelta*1e9+0.5))
	case dataset.ColFrameLen:
		return x.int(b, r.FrameLen)
	case dataset.ColIPSrc:
		return x.str(b, r.Src.String())
	case dataset.ColIPDst:
		return x.str(b, r.Dst.String())
	case dataset.ColSrcPort:
		return x.int(b, int(r.SrcPort))
	case dataset.ColDstPort:
		return x.int(b, int(r.DstPort))
	case dataset.ColTCPFlags:
		return x.hex(b, uint64(r.TCPFlags), 4)
	case dataset.ColTCPLen:
		return x.int(b, r.TCPLen)
	case dataset.ColTCPAck:
		return x.int(b, int(r.TCPAck))
	case dataset.ColConnFin:
		return x.flagIf(b, r.ConnFin)
	case dataset.ColConnRst:
		return x.flagIf(b, r.ConnRst)
	case dataset.ColConnSynAck:
		return x.flagIf(b, r.ConnSynAck)
	case dataset.ColConnSyn:
		return x.flagIf(b, r.ConnSyn)
	case dataset.ColFlagAck:
		return x.bit(b, r.TCPFlags&packet.FlagACK != 0)
	case dataset.ColFlagFin:
		return x.bit(b, r.TCPFlags&packet.FlagFIN != 0)
	case dataset.ColFlagPush:
		return x.bit(b, r.TCPFlags&packet.FlagPSH != 0)
	case dataset.ColFlagReset:
		return x.bit(b, r.TCPFlags&packet.FlagRST != 0)
	case dataset.ColFlagSyn:
		return x.bit(b, r.TCPFlags&packet.FlagSYN != 0)
	case dataset.ColFlagUrg:
		return x.bit(b, r.TCPFlags&packet.FlagURG != 0)
	case dataset.ColHdrLen:
		return x.int(b, r.HdrLen)
	case dataset.ColPayload:
		return x.bytes(b, r.Payload)
	case dataset.ColPDUSize:
		return x.int(b, r.PDUSize)
	case dataset.ColWindow:
		return x.int(b, r.Window)
	case dataset.ColChecksum:
		return x.hex(b, uint64(r.Checksum), 4)
	case dataset.ColClientID:
		return x.quoted(b, []byte(r.ClientID))
	case dataset.ColClientIDLen:
		return x.int(b, r.ClientIDLen)
	case dataset.ColConackFlags:
		return x.hex(b, uint64(r.ConackFlags), 2)
	case dataset.ColConackVal:
		return x.int(b, int(r.ConackVal))
	case dataset.ColConflagPasswd:
		return x.bit(b, r.Conflags&0x40 != 0)
	case dataset.ColConflagQoS:
		return x.int(b, int(r.Conflags>>3&3))
	case dataset.ColConflagReserved:
		return x.bit(b, r.Conflags&1 != 0)
	case dataset.ColConflagRetain:
		return x.bit(b, r.Conflags&0x20 != 0)
	case dataset.ColConflagWillflag:
		return x.bit(b, r.Conflags&4 != 0)
	case dataset.ColConflags:
		return x.hex(b, uint64(r.Conflags), 2)
	case dataset.ColDupflag:
		return x.bit(b, r.Dup)
	case dataset.ColHdrflags:
		return x.hex(b, uint64(r.HdrFlags), 2)
	case dataset.ColKalive:
		return x.int(b, r.KeepAlive)
	case dataset.ColMQTTLen:
		return x.int(b, r.MQTTLen)
	case dataset.ColMsg:
		return x.bytes(b, r.Msg)
	case dataset.ColMsgtype:
		return x.int(b, int(r.MsgType))
	case dataset.ColQoS:
		return x.int(b, int(r.QoS))
	case dataset.ColRetain:
		return x.bit(b, r.Retain)
	case dataset.ColTopic:
		return x.quoted(b, []byte(r.Topic))
	case dataset.ColTopicLen:
		return x.int(b, r.TopicLen)
	case dataset.ColVer:
		return x.int(b, int(r.Ver))
	case dataset.ColWillmsgLen:
		return x.int(b, r.WillMsgLen)
	case dataset.ColIPProto:
		return x.int(b, int(r.IPProto))
	case dataset.ColIPTTL:
		return x.int(b, int(r.TTL))
	case dataset.ColClass:
		if x.class != "" {
			return x.text(b, x.class)
		}
		return x.text(b, r.Class)
	case dataset.ColLabel:
		if x.label != "" {
			return x.text(b, x.label)
		}
		return x.text(b, r.Label)
	}
	return b
}

// Value formatting.

func (x *ICUCSV) empty(b []byte) []byte {
	if x.dialect == DialectReleased {
		return append(b, '0')
	}
	return b
}

func (x *ICUCSV) open(b []byte) []byte {
	if x.dialect == DialectTshark {
		return append(b, '"')
	}
	return b
}

func (x *ICUCSV) int(b []byte, v int) []byte {
	b = x.open(b)
	b = strconv.AppendInt(b, int64(v), 10)
	return x.open(b)
}

func (x *ICUCSV) str(b []byte, s string) []byte {
	b = x.open(b)
	b = append(b, s...)
	return x.open(b)
}

func (x *ICUCSV) bit(b []byte, v bool) []byte {
	b = x.open(b)
	if v {
		b = append(b, '1')
	} else {
		b = append(b, '0')
	}
	return x.open(b)
}

// flagIf writes "1" when v holds and leaves the field absent otherwise (tshark's
// tcp.connection.* expert fields exist only on the frames they describe).
func (x *ICUCSV) flagIf(b []byte, v bool) []byte {
	if !v {
		return x.empty(b)
	}
	return x.bit(b, true)
}

const hexdigits = "0123456789abcdef"

func (x *ICUCSV) hex(b []byte, v uint64, width int) []byte {
	if x.dialect == DialectReleased {
		width = 8
	}
	b = x.open(b)
	b = append(b, '0', 'x')
	for i := width - 1; i >= 0; i-- {
		b = append(b, hexdigits[v>>(4*uint(i))&0xf])
	}
	return x.open(b)
}

func (x *ICUCSV) bytes(b []byte, v []byte) []byte {
	if x.dialect == DialectReleased {
		if len(v) == 0 {
			return append(b, '0')
		}
		for i, c := range v {
			if i > 0 {
				b = append(b, ':')
			}
			b = append(b, hexdigits[c>>4], hexdigits[c&0xf])
		}
		return b
	}
	b = append(b, '"')
	for _, c := range v {
		b = append(b, hexdigits[c>>4], hexdigits[c&0xf])
	}
	return append(b, '"')
}

// quoted writes a string field as tshark does: quoted, with non-printable
// bytes and invalid UTF-8 escaped.
func (x *ICUCSV) quoted(b []byte, s []byte) []byte {
	if x.dialect == DialectReleased {
		if len(s) == 0 {
			return append(b, '0')
		}
		return appendCSVText(b, s)
	}
	b = append(b, '"')
	b = appendTsharkString(b, s)
	return append(b, '"')
}

// seconds writes ns as seconds with nine decimals (tshark's nstime format).
func (x *ICUCSV) seconds(b []byte, ns int64) []byte {
	b = x.open(b)
	if ns < 0 {
		b = append(b, '-')
		ns = -ns
	}
	b = strconv.AppendInt(b, ns/1e9, 10)
	b = append(b, '.')
	frac := ns % 1e9
	var d [9]byte
	for i := 8; i >= 0; i-- {
		d[i] = byte('0' + frac%10)
		frac /= 10
	}
	b = append(b, d[:]...)
	return x.open(b)
}

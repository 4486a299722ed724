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
	// -E occurrence=f` (Wireshark 4.0) writes: absent fields empty, values
	// quoted, hex flags as 0x%04x / 0x%02x, bytes as plain hex, times with 9 decimals.
	DialectTshark Dialect = iota
	// DialectReleased writes what the released dataset files hold: empty
	// cells as 0, flags as 0x%08x, payloads as colon-separated hex.
	DialectReleased
)

// ICUCSV writes the ICU dataset schema, one row per frame, with tshark's
// per-frame semantics: where a frame completes several MQTT packets, each
// column holds the first value of that field in the frame.
//
// The payload columns (tcp.payload, mqtt.msg) carry patient data: they are
// written only when Payloads is set, and left absent otherwise.
//
// Work is split in two stages: the pipeline's goroutine copies each row's
// values into a batch; a second goroutine formats and writes batches in order.
type ICUCSV struct {
	pipeline.Nop
	Payloads bool
	Rows     int64

	fmt   formatter
	class string
	label string
	w     *bufio.Writer

	mq    []mqttFields // MQTT packets completed in the current frame
	cur   *batch
	full  chan *batch
	free  chan *batch
	done  chan error
	err   error
	close bool
}

// batchRows is how many rows travel between the stages at once.
const batchRows = 4096

type batch struct {
	recs  []rowRec
	arena []byte // bytes the records' slices point into
}

// Presence bits of rowRec.
const (
	hasIP4 uint32 = 1 << iota
	hasTCP
	hasPayload
	hasPDU
	hasClientID
	hasClientIDLen
	hasAckFlags
	hasConackVal
	hasConflags
	hasPubFlags
	hasMQTT
	hasKalive
	hasMsg
	hasRetain
	hasTopic
	hasTopicLen
	hasVer
	hasWillLen
	isRaw // a preformatted row (ICU CSV input)
)

// span is a slice of a batch's arena.
type span struct{ off, n int32 }

// rowRec holds one row's values, copied out of the events.
type rowRec struct {
	has                    uint32
	delta, rel, tcpDelta   int64
	length, tcpLen, pdu    int
	src, dst               [4]byte
	sport, dport, flags    uint16
	window, checksum       uint16
	ack                    uint32
	hdrLen, proto, ttl     uint8
	payload, clientID, msg span
	topic, raw             span
	clientIDLen, topicLen  int
	mlen, willLen          int
	ackFlags, conackVal    uint8
	conflags, pubFlags     uint8
	hdrflags, msgtype, ver uint8
	retain                 bool
	kalive                 uint16
}

// mqttFields is the first-occurrence view of one MQTT packet, copied out of the event.
type mqttFields struct {
	typ       mqtt.Type
	header    byte
	length    int
	version   mqtt.Version // connection's level from its CONNECT (tshark's runtime version)
	present   mqtt.Field
	level     uint8
	conflags  uint8
	keepalive uint16
	clientID  []byte
	ackFlags  uint8
	reason    uint8
	topic     []byte
	topicLen  int
	msg       []byte
	willLen   int
}

// NewICUCSV writes the header to w and returns the writer. class and label
// fill the last two columns (empty when not given). Close must be called.
func NewICUCSV(w io.Writer, d Dialect, class, label string) *ICUCSV {
	x := &ICUCSV{w: bufio.NewWriterSize(w, 1<<20), fmt: formatter{dialect: d}, class: class, label: label,
		full: make(chan *batch, 2), free: make(chan *batch, 3), done: make(chan error, 1)}
	for i := 0; i < 3; i++ {
		x.free <- &batch{recs: make([]rowRec, 0, batchRows)}
	}
	for i, h := range dataset.Header {
		if i > 0 {
			x.w.WriteByte(',')
		}
		x.w.WriteString(h)
	}
	x.w.WriteByte('\n')
	go x.writer()
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
	// Keep the byte buffers of the slot for reuse.
	clientID, msg, topic := m.clientID[:0], m.msg[:0], m.topic[:0]
	*m = mqttFields{typ: p.Type, header: p.Header, length: p.RemainingLength, version: ev.Session.Level, present: p.Present,
		level: p.ProtocolLevel, conflags: p.ConnectFlags, keepalive: p.KeepAlive, ackFlags: p.AckFlags,
		reason: p.ReasonCode, willLen: p.WillLen, clientID: append(clientID, p.ClientID...), topic: topic, msg: msg}
	if x.Payloads {
		m.msg = append(m.msg, p.Payload...)
	}
	switch p.Type {
	case mqtt.PUBLISH:
		m.topic = append(m.topic, p.Topic...)
		m.topicLen = len(p.Topic)
	case mqtt.SUBSCRIBE, mqtt.UNSUBSCRIBE:
		if len(p.Filters) > 0 {
			m.topic = append(m.topic, p.Filters[0].Filter...)
			m.topicLen = len(p.Filters[0].Filter)
		}
	}
}

// OnFrame records the frame's row.
func (x *ICUCSV) OnFrame(f *pipeline.Frame) {
	if x.cur == nil {
		x.cur = <-x.free
		x.cur.recs = x.cur.recs[:0]
		x.cur.arena = x.cur.arena[:0]
	}
	b := x.cur
	b.recs = append(b.recs, rowRec{})
	r := &b.recs[len(b.recs)-1]
	if f.Row != nil && len(x.mq) == 0 {
		start := len(b.arena)
		b.arena = x.appendRow(b.arena, f.Row)
		r.has = isRaw
		r.raw = span{int32(start), int32(len(b.arena) - start)}
	} else {
		x.record(r, f)
	}
	x.mq = x.mq[:0]
	x.Rows++
	if len(b.recs) == batchRows || len(b.arena) > 8<<20 {
		x.full <- b
		x.cur = nil
	}
}

func (x *ICUCSV) keep(b []byte) span {
	a := &x.cur.arena
	off := len(*a)
	*a = append(*a, b...)
	return span{int32(off), int32(len(b))}
}

// first returns the first collected MQTT packet having field f.
func (x *ICUCSV) first(f mqtt.Field) *mqttFields {
	for i := range x.mq {
		if x.mq[i].present&f != 0 {
			return &x.mq[i]
		}
	}
	return nil
}

// record copies a frame's values (tshark's semantics for each field) into r.
func (x *ICUCSV) record(r *rowRec, f *pipeline.Frame) {
	l := f.L
	r.delta, r.rel, r.length = f.Delta, f.Rel, f.Len
	if l.IPVersion == 4 && l.Src.IsValid() {
		r.has |= hasIP4
		r.src, r.dst = l.Src.As4(), l.Dst.As4()
		r.proto, r.ttl = l.IPProto, l.TTL
	}
	if f.TCP != nil && l.IsTCP() {
		t := &l.TCP
		r.has |= hasTCP
		r.sport, r.dport, r.flags = l.SrcPort, l.DstPort, t.Flags
		r.tcpDelta, r.tcpLen, r.ack = f.TCP.Delta, l.PayloadLen, f.TCP.RelAck
		r.hdrLen, r.window, r.checksum = t.HdrLen, t.Window, t.Checksum
		if x.Payloads && l.PayloadLen > 0 && len(l.Payload) > 0 {
			r.has |= hasPayload
			r.payload = x.keep(l.Payload)
		}
		if f.PDUSize > 0 {
			r.has |= hasPDU
			r.pdu = f.PDUSize
		}
	}
	if len(x.mq) == 0 {
		return
	}
	first := &x.mq[0]
	r.has |= hasMQTT
	r.hdrflags, r.mlen, r.msgtype = first.header, first.length, uint8(first.typ)
	if m := x.first(mqtt.FieldClientID); m != nil {
		r.has |= hasClientID
		r.clientID = x.keep(m.clientID)
	}
	if m := x.first(mqtt.FieldClientIDLen); m != nil {
		r.has |= hasClientIDLen
		r.clientIDLen = len(m.clientID)
	}
	// mqtt.conack.flags: CONNACK unless the connection is MQTT 3.1.
	if m := x.first(mqtt.FieldAckFlags); m != nil {
		r.has |= hasAckFlags
		r.ackFlags = m.ackFlags
	}
	// mqtt.conack.val: CONNACK on 3.1 and 3.1.1 connections (MQTT 5 has a reason code field instead).
	for i := range x.mq {
		m := &x.mq[i]
		if m.typ == mqtt.CONNACK && m.present&mqtt.FieldReasonCode != 0 && (m.version == mqtt.V31 || m.version == mqtt.V311) {
			r.has |= hasConackVal
			r.conackVal = m.reason
			break
		}
	}
	if m := x.first(mqtt.FieldConnectFlags); m != nil {
		r.has |= hasConflags
		r.conflags = m.conflags
	}
	// mqtt.dupflag and mqtt.qos: PUBLISH, and PUBREL/SUBSCRIBE/UNSUBSCRIBE on 3.1 connections.
	for i := range x.mq {
		if hasPublishFlags(&x.mq[i]) {
			r.has |= hasPubFlags
			r.pubFlags = x.mq[i].header
			break
		}
	}
	// mqtt.retain: PUBLISH only (3.1 PUBREL/SUBSCRIBE/UNSUBSCRIBE have a reserved bit there).
	for i := range x.mq {
		if x.mq[i].typ == mqtt.PUBLISH {
			r.has |= hasRetain
			r.retain = x.mq[i].header&1 != 0
			break
		}
	}
	if m := x.first(mqtt.FieldKeepAlive); m != nil {
		r.has |= hasKalive
		r.kalive = m.keepalive
	}
	if m := x.first(mqtt.FieldPayload); m != nil && x.Payloads {
		r.has |= hasMsg
		r.msg = x.keep(m.msg)
	}
	if m := x.first(mqtt.FieldTopic); m != nil {
		r.has |= hasTopic
		r.topic = x.keep(m.topic)
	}
	if m := x.first(mqtt.FieldTopicLen); m != nil {
		r.has |= hasTopicLen
		r.topicLen = m.topicLen
	}
	if m := x.first(mqtt.FieldProtocol); m != nil {
		r.has |= hasVer
		r.ver = m.level
	}
	if m := x.first(mqtt.FieldWillPayloadLen); m != nil {
		r.has |= hasWillLen
		r.willLen = m.willLen
	}
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

// writer is the second stage: it formats batches and writes them in order.
func (x *ICUCSV) writer() {
	var err error
	var line []byte
	for b := range x.full {
		if err == nil {
			for i := range b.recs {
				line = x.format(line[:0], &b.recs[i], b.arena)
				if _, werr := x.w.Write(line); werr != nil {
					err = werr
					break
				}
			}
		}
		x.free <- b
	}
	if err == nil {
		err = x.w.Flush()
	}
	x.done <- err
}

// Close writes what is pending, stops the writer and returns the first write error.
func (x *ICUCSV) Close() error {
	if x.close {
		return x.err
	}
	x.close = true
	if x.cur != nil && len(x.cur.recs) > 0 {
		x.full <- x.cur
		x.cur = nil
	}
	close(x.full)
	x.err = <-x.done
	return x.err
}

// format appends the row of r.
func (x *ICUCSV) format(b []byte, r *rowRec, arena []byte) []byte {
	f := &x.fmt
	at := func(s span) []byte { return arena[s.off : s.off+s.n] }
	if r.has&isRaw != 0 {
		return append(b, at(r.raw)...)
	}
	b = f.seconds(b, r.delta)
	b = append(b, ',')
	b = f.seconds(b, r.rel)
	b = append(b, ',')
	b = f.int(b, r.length)
	b = append(b, ',')
	if r.has&hasIP4 != 0 {
		b = f.ip4(b, r.src)
		b = append(b, ',')
		b = f.ip4(b, r.dst)
	} else {
		b = f.empty(b)
		b = append(b, ',')
		b = f.empty(b)
	}
	b = append(b, ',')
	if r.has&hasTCP == 0 {
		for i := dataset.ColSrcPort; i < dataset.ColClientID; i++ {
			if i > dataset.ColSrcPort {
				b = append(b, ',')
			}
			b = f.empty(b)
		}
	} else {
		b = f.int(b, int(r.sport))
		b = append(b, ',')
		b = f.int(b, int(r.dport))
		b = append(b, ',')
		b = f.hex(b, uint64(r.flags), 4)
		b = append(b, ',')
		b = f.seconds(b, r.tcpDelta)
		b = append(b, ',')
		b = f.int(b, r.tcpLen)
		b = append(b, ',')
		b = f.int(b, int(r.ack))
		b = append(b, ',')
		b = f.flagIf(b, r.flags&packet.FlagFIN != 0)
		b = append(b, ',')
		b = f.flagIf(b, r.flags&packet.FlagRST != 0)
		b = append(b, ',')
		b = f.flagIf(b, r.flags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK)
		b = append(b, ',')
		b = f.flagIf(b, r.flags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN)
		for _, bit := range [...]uint16{packet.FlagACK, packet.FlagFIN, packet.FlagPSH, packet.FlagRST, packet.FlagSYN, packet.FlagURG} {
			b = append(b, ',')
			b = f.bit(b, r.flags&bit != 0)
		}
		b = append(b, ',')
		b = f.int(b, int(r.hdrLen))
		b = append(b, ',')
		if r.has&hasPayload != 0 {
			b = f.bytes(b, at(r.payload))
		} else {
			b = f.empty(b)
		}
		b = append(b, ',')
		if r.has&hasPDU != 0 {
			b = f.int(b, r.pdu)
		} else {
			b = f.empty(b)
		}
		b = append(b, ',')
		b = f.int(b, int(r.window))
		b = append(b, ',')
		b = f.hex(b, uint64(r.checksum), 4)
	}
	b = append(b, ',')
	opt := func(b []byte, bit uint32, fn func([]byte) []byte) []byte {
		if r.has&bit != 0 {
			return fn(b)
		}
		return f.empty(b)
	}
	b = opt(b, hasClientID, func(b []byte) []byte { return f.quoted(b, at(r.clientID)) })
	b = append(b, ',')
	b = opt(b, hasClientIDLen, func(b []byte) []byte { return f.int(b, r.clientIDLen) })
	b = append(b, ',')
	b = opt(b, hasAckFlags, func(b []byte) []byte { return f.hex(b, uint64(r.ackFlags), 2) })
	b = append(b, ',')
	b = opt(b, hasConackVal, func(b []byte) []byte { return f.int(b, int(r.conackVal)) })
	b = append(b, ',')
	if r.has&hasConflags != 0 {
		fl := r.conflags
		b = f.bit(b, fl&0x40 != 0)
		b = append(b, ',')
		b = f.int(b, int(fl>>3&3))
		b = append(b, ',')
		b = f.bit(b, fl&0x01 != 0)
		b = append(b, ',')
		b = f.bit(b, fl&0x20 != 0)
		b = append(b, ',')
		b = f.bit(b, fl&0x04 != 0)
		b = append(b, ',')
		b = f.hex(b, uint64(fl), 2)
	} else {
		for i := 0; i < 6; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = f.empty(b)
		}
	}
	b = append(b, ',')
	b = opt(b, hasPubFlags, func(b []byte) []byte { return f.bit(b, r.pubFlags&8 != 0) })
	b = append(b, ',')
	b = opt(b, hasMQTT, func(b []byte) []byte { return f.hex(b, uint64(r.hdrflags), 2) })
	b = append(b, ',')
	b = opt(b, hasKalive, func(b []byte) []byte { return f.int(b, int(r.kalive)) })
	b = append(b, ',')
	b = opt(b, hasMQTT, func(b []byte) []byte { return f.int(b, r.mlen) })
	b = append(b, ',')
	b = opt(b, hasMsg, func(b []byte) []byte { return f.bytes(b, at(r.msg)) })
	b = append(b, ',')
	b = opt(b, hasMQTT, func(b []byte) []byte { return f.int(b, int(r.msgtype)) })
	b = append(b, ',')
	b = opt(b, hasPubFlags, func(b []byte) []byte { return f.int(b, int(r.pubFlags>>1&3)) })
	b = append(b, ',')
	b = opt(b, hasRetain, func(b []byte) []byte { return f.bit(b, r.retain) })
	b = append(b, ',')
	b = opt(b, hasTopic, func(b []byte) []byte { return f.quoted(b, at(r.topic)) })
	b = append(b, ',')
	b = opt(b, hasTopicLen, func(b []byte) []byte { return f.int(b, r.topicLen) })
	b = append(b, ',')
	b = opt(b, hasVer, func(b []byte) []byte { return f.int(b, int(r.ver)) })
	b = append(b, ',')
	b = opt(b, hasWillLen, func(b []byte) []byte { return f.int(b, r.willLen) })
	b = append(b, ',')
	if r.has&hasIP4 != 0 {
		b = f.int(b, int(r.proto))
		b = append(b, ',')
		b = f.int(b, int(r.ttl))
	} else {
		b = f.empty(b)
		b = append(b, ',')
		b = f.empty(b)
	}
	b = append(b, ',')
	b = f.text(b, x.class)
	b = append(b, ',')
	b = f.text(b, x.label)
	return append(b, '\n')
}

// appendRow re-writes a dataset row read from CSV input.
func (x *ICUCSV) appendRow(b []byte, r *dataset.Row) []byte {
	for c := 0; c < dataset.NumColumns; c++ {
		if c > 0 {
			b = append(b, ',')
		}
		if (!r.Has[c] && c != dataset.ColClass && c != dataset.ColLabel) ||
			(!x.Payloads && (c == dataset.ColPayload || c == dataset.ColMsg)) {
			b = x.fmt.empty(b)
			continue
		}
		b = x.rowCell(b, r, c)
	}
	return append(b, '\n')
}

func (x *ICUCSV) rowCell(b []byte, r *dataset.Row, c int) []byte {
	f := &x.fmt
	switch c {
	case dataset.ColTimeDelta:
		return f.seconds(b, int64(r.TimeDelta*1e9+0.5))
	case dataset.ColTimeRelative:
		return f.seconds(b, int64(r.TimeRelative*1e9+0.5))
	case dataset.ColTCPTimeDelta:
		return f.seconds(b, int64(r.TCPTimeDelta*1e9+0.5))
	case dataset.ColFrameLen:
		return f.int(b, r.FrameLen)
	case dataset.ColIPSrc:
		return f.str(b, r.Src.String())
	case dataset.ColIPDst:
		return f.str(b, r.Dst.String())
	case dataset.ColSrcPort:
		return f.int(b, int(r.SrcPort))
	case dataset.ColDstPort:
		return f.int(b, int(r.DstPort))
	case dataset.ColTCPFlags:
		return f.hex(b, uint64(r.TCPFlags), 4)
	case dataset.ColTCPLen:
		return f.int(b, r.TCPLen)
	case dataset.ColTCPAck:
		return f.int(b, int(r.TCPAck))
	case dataset.ColConnFin:
		return f.flagIf(b, r.ConnFin)
	case dataset.ColConnRst:
		return f.flagIf(b, r.ConnRst)
	case dataset.ColConnSynAck:
		return f.flagIf(b, r.ConnSynAck)
	case dataset.ColConnSyn:
		return f.flagIf(b, r.ConnSyn)
	case dataset.ColFlagAck:
		return f.bit(b, r.TCPFlags&packet.FlagACK != 0)
	case dataset.ColFlagFin:
		return f.bit(b, r.TCPFlags&packet.FlagFIN != 0)
	case dataset.ColFlagPush:
		return f.bit(b, r.TCPFlags&packet.FlagPSH != 0)
	case dataset.ColFlagReset:
		return f.bit(b, r.TCPFlags&packet.FlagRST != 0)
	case dataset.ColFlagSyn:
		return f.bit(b, r.TCPFlags&packet.FlagSYN != 0)
	case dataset.ColFlagUrg:
		return f.bit(b, r.TCPFlags&packet.FlagURG != 0)
	case dataset.ColHdrLen:
		return f.int(b, r.HdrLen)
	case dataset.ColPayload:
		return f.bytes(b, r.Payload)
	case dataset.ColPDUSize:
		return f.int(b, r.PDUSize)
	case dataset.ColWindow:
		return f.int(b, r.Window)
	case dataset.ColChecksum:
		return f.hex(b, uint64(r.Checksum), 4)
	case dataset.ColClientID:
		return f.quoted(b, []byte(r.ClientID))
	case dataset.ColClientIDLen:
		return f.int(b, r.ClientIDLen)
	case dataset.ColConackFlags:
		return f.hex(b, uint64(r.ConackFlags), 2)
	case dataset.ColConackVal:
		return f.int(b, int(r.ConackVal))
	case dataset.ColConflagPasswd:
		return f.bit(b, r.Conflags&0x40 != 0)
	case dataset.ColConflagQoS:
		return f.int(b, int(r.Conflags>>3&3))
	case dataset.ColConflagReserved:
		return f.bit(b, r.Conflags&1 != 0)
	case dataset.ColConflagRetain:
		return f.bit(b, r.Conflags&0x20 != 0)
	case dataset.ColConflagWillflag:
		return f.bit(b, r.Conflags&4 != 0)
	case dataset.ColConflags:
		return f.hex(b, uint64(r.Conflags), 2)
	case dataset.ColDupflag:
		return f.bit(b, r.Dup)
	case dataset.ColHdrflags:
		return f.hex(b, uint64(r.HdrFlags), 2)
	case dataset.ColKalive:
		return f.int(b, r.KeepAlive)
	case dataset.ColMQTTLen:
		return f.int(b, r.MQTTLen)
	case dataset.ColMsg:
		return f.bytes(b, r.Msg)
	case dataset.ColMsgtype:
		return f.int(b, int(r.MsgType))
	case dataset.ColQoS:
		return f.int(b, int(r.QoS))
	case dataset.ColRetain:
		return f.bit(b, r.Retain)
	case dataset.ColTopic:
		return f.quoted(b, []byte(r.Topic))
	case dataset.ColTopicLen:
		return f.int(b, r.TopicLen)
	case dataset.ColVer:
		return f.int(b, int(r.Ver))
	case dataset.ColWillmsgLen:
		return f.int(b, r.WillMsgLen)
	case dataset.ColIPProto:
		return f.int(b, int(r.IPProto))
	case dataset.ColIPTTL:
		return f.int(b, int(r.TTL))
	case dataset.ColClass:
		if x.class != "" {
			return f.text(b, x.class)
		}
		return f.text(b, r.Class)
	case dataset.ColLabel:
		if x.label != "" {
			return f.text(b, x.label)
		}
		return f.text(b, r.Label)
	}
	return b
}

// formatter writes values in a dialect.
type formatter struct{ dialect Dialect }

func (x *formatter) empty(b []byte) []byte {
	if x.dialect == DialectReleased {
		return append(b, '0')
	}
	return b
}

func (x *formatter) open(b []byte) []byte {
	if x.dialect == DialectTshark {
		return append(b, '"')
	}
	return b
}

func (x *formatter) int(b []byte, v int) []byte {
	b = x.open(b)
	if v >= 0 {
		b = appendUint(b, uint64(v))
	} else {
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return x.open(b)
}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// appendUint appends v in decimal, two digits at a time.
func appendUint(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, byte('0'+v))
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

func (x *formatter) str(b []byte, s string) []byte {
	b = x.open(b)
	b = append(b, s...)
	return x.open(b)
}

func (x *formatter) bit(b []byte, v bool) []byte {
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
func (x *formatter) flagIf(b []byte, v bool) []byte {
	if !v {
		return x.empty(b)
	}
	return x.bit(b, true)
}

const hexdigits = "0123456789abcdef"

func (x *formatter) hex(b []byte, v uint64, width int) []byte {
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

func (x *formatter) bytes(b []byte, v []byte) []byte {
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
func (x *formatter) quoted(b []byte, s []byte) []byte {
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
func (x *formatter) seconds(b []byte, ns int64) []byte {
	b = x.open(b)
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
	return x.open(b)
}

func (x *formatter) text(b []byte, s string) []byte {
	if s == "" {
		return x.empty(b)
	}
	return x.quoted(b, []byte(s))
}

func (x *formatter) ip4(b []byte, a [4]byte) []byte {
	b = x.open(b)
	for i, v := range a {
		if i > 0 {
			b = append(b, '.')
		}
		b = appendUint(b, uint64(v))
	}
	return x.open(b)
}

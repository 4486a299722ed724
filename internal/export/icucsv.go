// Package export writes pipeline events in the forms researchers and SOC tools
// use: the ICU dataset CSV (tshark's field export, 52 columns) and JSON lines,
// one object per MQTT control packet.
package export

import (
	"bufio"
	"io"
	"math"

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
// written only when Payloads is set, and left absent otherwise. Even then
// the credentials in tcp.payload (CONNECT passwords, MQTT 5 authentication
// data, WebSocket upgrade tokens: pipeline.Frame.Secret) are masked byte for
// byte, keeping the length, unless RevealCredentials is set.
//
// Work is split in two stages: the pipeline's goroutine copies each row's
// values into a batch; a second goroutine formats and writes batches in order.
type ICUCSV struct {
	pipeline.Nop
	Payloads bool
	// RevealCredentials writes credential bytes as captured instead of
	// masking them with pipeline.MaskByte.
	RevealCredentials bool
	// OnlyMQTT writes only the frames that complete an MQTT packet, as the
	// released dataset files (tshark -Y mqtt) do.
	OnlyMQTT bool
	// Labeler, when set, gives each frame's class and label (by frame number).
	Labeler func(frame int) (class, label string)
	Rows    int64

	fmt   *formatter
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
	hasLabels // class and label from the Labeler
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
	topic, class, label    span
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
	x := &ICUCSV{w: bufio.NewWriterSize(w, 1<<20), fmt: &formatter{dialect: d}, class: class, label: label,
		full: make(chan *batch, 2), free: make(chan *batch, 3), done: make(chan error, 1)}
	for i := 0; i < 3; i++ {
		x.free <- &batch{recs: make([]rowRec, 0, batchRows)}
	}
	// The header is the dialect's: tshark names the SYN-ACK column
	// tcp.connection.synack, the released files tcp.connection.sack.
	for i, h := range dataset.Header {
		if i > 0 {
			x.w.WriteByte(',')
		}
		if d == DialectTshark && i < dataset.ColClass {
			h = dataset.TsharkField(i)
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
		m.topic = append(m.topic, p.TopicName()...)
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
	if x.OnlyMQTT && len(x.mq) == 0 && (f.Row == nil || f.Row.MsgType == 0) {
		return
	}
	if x.cur == nil {
		x.cur = <-x.free
		x.cur.recs = x.cur.recs[:0]
		x.cur.arena = x.cur.arena[:0]
	}
	b := x.cur
	b.recs = append(b.recs, rowRec{})
	r := &b.recs[len(b.recs)-1]
	if f.Row != nil {
		// A dataset row's own columns are authoritative (tshark wrote them).
		x.recordRow(r, f)
	} else {
		x.record(r, f)
	}
	if x.Labeler != nil {
		class, label := x.Labeler(f.Num)
		r.class, r.label = x.keep([]byte(class)), x.keep([]byte(label))
		r.has |= hasLabels
	}
	x.mq = x.mq[:0]
	x.Rows++
	if len(b.recs) == batchRows || len(b.arena) > 8<<20 {
		x.full <- b
		x.cur = nil
	}
}

// keepPayload keeps a frame's TCP payload, its credentials masked.
func (x *ICUCSV) keepPayload(f *pipeline.Frame, b []byte) span {
	s := x.keep(b)
	if !x.RevealCredentials && len(f.Secret) > 0 {
		f.MaskSecrets(x.cur.arena[s.off : s.off+s.n])
	}
	return s
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
			r.payload = x.keepPayload(f, l.Payload)
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

// recordRow copies a dataset row (ICU CSV input) into r.
func (x *ICUCSV) recordRow(r *rowRec, f *pipeline.Frame) {
	row := f.Row
	has := func(c int) bool { return row.Has[c] }
	if row.Class != "" {
		r.class = x.keep([]byte(row.Class))
	}
	if row.Label != "" {
		r.label = x.keep([]byte(row.Label))
	}
	r.delta = int64(math.Round(row.TimeDelta * 1e9))
	r.rel = int64(math.Round(row.TimeRelative * 1e9))
	r.length = row.FrameLen
	if row.Src.Is4() {
		r.has |= hasIP4
		r.src, r.dst = row.Src.As4(), row.Dst.As4()
		r.proto, r.ttl = row.IPProto, row.TTL
	}
	if has(dataset.ColSrcPort) || has(dataset.ColTCPFlags) {
		r.has |= hasTCP
		r.sport, r.dport, r.flags = row.SrcPort, row.DstPort, row.TCPFlags
		r.tcpDelta, r.tcpLen, r.ack = int64(math.Round(row.TCPTimeDelta*1e9)), row.TCPLen, row.TCPAck
		r.hdrLen, r.window, r.checksum = uint8(row.HdrLen), uint16(row.Window), row.Checksum
		if x.Payloads && len(row.Payload) > 0 {
			r.has |= hasPayload
			r.payload = x.keepPayload(f, row.Payload)
		}
		if has(dataset.ColPDUSize) && row.PDUSize > 0 {
			r.has |= hasPDU
			r.pdu = row.PDUSize
		}
	}
	if row.MsgType == 0 {
		return
	}
	r.has |= hasMQTT
	r.hdrflags, r.mlen, r.msgtype = row.HdrFlags, row.MQTTLen, row.MsgType
	set := func(c int, bit uint32) bool {
		if has(c) {
			r.has |= bit
			return true
		}
		return false
	}
	if set(dataset.ColClientID, hasClientID) {
		r.clientID = x.keep([]byte(row.ClientID))
	}
	if set(dataset.ColClientIDLen, hasClientIDLen) {
		r.clientIDLen = row.ClientIDLen
	}
	if set(dataset.ColConackFlags, hasAckFlags) {
		r.ackFlags = row.ConackFlags
	}
	if set(dataset.ColConackVal, hasConackVal) {
		r.conackVal = row.ConackVal
	}
	if set(dataset.ColConflags, hasConflags) {
		r.conflags = row.Conflags
	}
	if set(dataset.ColQoS, hasPubFlags) {
		r.pubFlags = row.QoS<<1 | boolBit(row.Dup)<<3
	}
	if set(dataset.ColRetain, hasRetain) {
		r.retain = row.Retain
	}
	if set(dataset.ColKalive, hasKalive) {
		r.kalive = uint16(row.KeepAlive)
	}
	if x.Payloads && set(dataset.ColMsg, hasMsg) {
		r.msg = x.keep(row.Msg)
	}
	if set(dataset.ColTopic, hasTopic) {
		r.topic = x.keep([]byte(row.Topic))
	}
	if set(dataset.ColTopicLen, hasTopicLen) {
		r.topicLen = row.TopicLen
	}
	if set(dataset.ColVer, hasVer) {
		r.ver = row.Ver
	}
	if set(dataset.ColWillmsgLen, hasWillLen) {
		r.willLen = row.WillMsgLen
	}
}

func boolBit(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

// format appends the row of r, column by column.
func (x *ICUCSV) format(b []byte, r *rowRec, arena []byte) []byte {
	f := x.fmt
	at := func(s span) []byte { return arena[s.off : s.off+s.n] }
	tcp := r.has&hasTCP != 0
	for c := 0; c < dataset.NumColumns; c++ {
		if c > 0 {
			b = append(b, ',')
		}
		// Columns that need TCP.
		if !tcp && c >= dataset.ColSrcPort && c < dataset.ColClientID {
			b = f.absent(b, c)
			continue
		}
		switch c {
		case dataset.ColTimeDelta:
			b = f.seconds(b, c, r.delta)
		case dataset.ColTimeRelative:
			b = f.seconds(b, c, r.rel)
		case dataset.ColFrameLen:
			b = f.uint(b, c, uint64(r.length))
		case dataset.ColIPSrc, dataset.ColIPDst:
			if r.has&hasIP4 == 0 {
				b = f.absent(b, c)
			} else if c == dataset.ColIPSrc {
				b = f.ip4(b, r.src)
			} else {
				b = f.ip4(b, r.dst)
			}
		case dataset.ColSrcPort:
			b = f.uint(b, c, uint64(r.sport))
		case dataset.ColDstPort:
			b = f.uint(b, c, uint64(r.dport))
		case dataset.ColTCPFlags:
			b = f.hex(b, c, uint64(r.flags), 4)
		case dataset.ColTCPTimeDelta:
			b = f.seconds(b, c, r.tcpDelta)
		case dataset.ColTCPLen:
			b = f.uint(b, c, uint64(r.tcpLen))
		case dataset.ColTCPAck:
			b = f.uint(b, c, uint64(r.ack))
		case dataset.ColConnFin:
			b = f.expert(b, c, r.flags&packet.FlagFIN != 0)
		case dataset.ColConnRst:
			b = f.expert(b, c, r.flags&packet.FlagRST != 0)
		case dataset.ColConnSynAck:
			b = f.expert(b, c, r.flags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK)
		case dataset.ColConnSyn:
			b = f.expert(b, c, r.flags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN)
		case dataset.ColFlagAck:
			b = f.bool(b, c, r.flags&packet.FlagACK != 0)
		case dataset.ColFlagFin:
			b = f.bool(b, c, r.flags&packet.FlagFIN != 0)
		case dataset.ColFlagPush:
			b = f.bool(b, c, r.flags&packet.FlagPSH != 0)
		case dataset.ColFlagReset:
			b = f.bool(b, c, r.flags&packet.FlagRST != 0)
		case dataset.ColFlagSyn:
			b = f.bool(b, c, r.flags&packet.FlagSYN != 0)
		case dataset.ColFlagUrg:
			b = f.bool(b, c, r.flags&packet.FlagURG != 0)
		case dataset.ColHdrLen:
			b = f.uint(b, c, uint64(r.hdrLen))
		case dataset.ColPayload:
			if r.has&hasPayload != 0 {
				b = f.bytes(b, c, at(r.payload))
			} else {
				b = f.absent(b, c)
			}
		case dataset.ColPDUSize:
			if r.has&hasPDU != 0 {
				b = f.uint(b, c, uint64(r.pdu))
			} else {
				b = f.absent(b, c)
			}
		case dataset.ColWindow:
			b = f.uint(b, c, uint64(r.window))
		case dataset.ColChecksum:
			b = f.hex(b, c, uint64(r.checksum), 4)
		case dataset.ColClientID:
			b = f.optString(b, c, r.has&hasClientID != 0, at(r.clientID))
		case dataset.ColClientIDLen:
			b = f.optUint(b, c, r.has&hasClientIDLen != 0, uint64(r.clientIDLen))
		case dataset.ColConackFlags:
			b = f.optHex(b, c, r.has&hasAckFlags != 0, uint64(r.ackFlags), 2)
		case dataset.ColConackVal:
			b = f.optUint(b, c, r.has&hasConackVal != 0, uint64(r.conackVal))
		case dataset.ColConflagPasswd:
			b = f.optBool(b, c, r.has&hasConflags != 0, r.conflags&0x40 != 0)
		case dataset.ColConflagQoS:
			b = f.optUint(b, c, r.has&hasConflags != 0, uint64(r.conflags>>3&3))
		case dataset.ColConflagReserved:
			b = f.optBool(b, c, r.has&hasConflags != 0, r.conflags&1 != 0)
		case dataset.ColConflagRetain:
			b = f.optBool(b, c, r.has&hasConflags != 0, r.conflags&0x20 != 0)
		case dataset.ColConflagWillflag:
			b = f.optBool(b, c, r.has&hasConflags != 0, r.conflags&4 != 0)
		case dataset.ColConflags:
			b = f.optHex(b, c, r.has&hasConflags != 0, uint64(r.conflags), 2)
		case dataset.ColDupflag:
			b = f.optBool(b, c, r.has&hasPubFlags != 0, r.pubFlags&8 != 0)
		case dataset.ColHdrflags:
			b = f.optHex(b, c, r.has&hasMQTT != 0, uint64(r.hdrflags), 2)
		case dataset.ColKalive:
			b = f.optUint(b, c, r.has&hasKalive != 0, uint64(r.kalive))
		case dataset.ColMQTTLen:
			b = f.optUint(b, c, r.has&hasMQTT != 0, uint64(r.mlen))
		case dataset.ColMsg:
			if r.has&hasMsg != 0 {
				b = f.bytes(b, c, at(r.msg))
			} else {
				b = f.absent(b, c)
			}
		case dataset.ColMsgtype:
			b = f.optUint(b, c, r.has&hasMQTT != 0, uint64(r.msgtype))
		case dataset.ColQoS:
			b = f.optUint(b, c, r.has&hasPubFlags != 0, uint64(r.pubFlags>>1&3))
		case dataset.ColRetain:
			b = f.optBool(b, c, r.has&hasRetain != 0, r.retain)
		case dataset.ColTopic:
			b = f.optString(b, c, r.has&hasTopic != 0, at(r.topic))
		case dataset.ColTopicLen:
			b = f.optUint(b, c, r.has&hasTopicLen != 0, uint64(r.topicLen))
		case dataset.ColVer:
			b = f.optUint(b, c, r.has&hasVer != 0, uint64(r.ver))
		case dataset.ColWillmsgLen:
			b = f.optUint(b, c, r.has&hasWillLen != 0, uint64(r.willLen))
		case dataset.ColIPProto:
			b = f.optUint(b, c, r.has&hasIP4 != 0, uint64(r.proto))
		case dataset.ColIPTTL:
			b = f.optUint(b, c, r.has&hasIP4 != 0, uint64(r.ttl))
		case dataset.ColClass:
			if r.has&hasLabels != 0 {
				b = f.label(b, at(r.class))
			} else if x.class != "" || r.class.n == 0 {
				b = f.label(b, []byte(x.class))
			} else {
				b = f.label(b, at(r.class))
			}
		case dataset.ColLabel:
			if r.has&hasLabels != 0 {
				b = f.label(b, at(r.label))
			} else if x.label != "" || r.label.n == 0 {
				b = f.label(b, []byte(x.label))
			} else {
				b = f.label(b, at(r.label))
			}
		}
	}
	return append(b, '\n')
}

package mqtt

import (
	"bytes"
	"errors"
	"unicode/utf8"
)

// Header errors from ParseFixedHeader.
var (
	// ErrShort means more bytes are needed to read the fixed header.
	ErrShort = errors.New("mqtt: fixed header incomplete")
	// ErrMalformedLength means the remaining length uses more than four bytes. [MQTT-1.5.5]
	ErrMalformedLength = errors.New("mqtt: remaining length longer than four bytes")
)

// MaxRemainingLength is the largest remaining length four bytes can encode (256 MB).
const MaxRemainingLength = 268435455

// ParseFixedHeader reads the fixed header at the start of b: the first byte and
// the variable-length remaining length. It returns the header's size in bytes
// and the remaining length.
func ParseFixedHeader(b []byte) (hdrLen, remaining int, err error) {
	if len(b) < 2 {
		return 0, 0, ErrShort
	}
	mult := 1
	for i := 1; i < 5; i++ {
		if i >= len(b) {
			return 0, 0, ErrShort
		}
		c := b[i]
		remaining += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return i + 1, remaining, nil
		}
		mult <<= 7
	}
	return 0, 0, ErrMalformedLength
}

// Decode decodes the packet in b, which holds its fixed header and the first
// bytes of its body; total is the packet's full size (header plus remaining
// length). When len(b) < total the body was cut (a large PUBLISH whose payload
// the caller chose not to buffer): fields that fit are decoded and PayloadLen
// still gives the true payload length. v is the connection's protocol level
// (VersionUnknown when no CONNECT was seen), which decides whether MQTT 5
// properties are present, as in tshark. p is reset first.
func Decode(b []byte, total int, v Version, p *Packet) {
	p.Reset()
	hl, rl, err := ParseFixedHeader(b)
	if err != nil {
		if len(b) > 0 {
			p.Header = b[0]
			p.Type = Type(b[0] >> 4)
		}
		p.Anomalies |= AnomalyMalformedLength
		return
	}
	p.Header = b[0]
	p.Type = Type(b[0] >> 4)
	p.RemainingLength = rl
	p.LenBytes = hl - 1
	p.Version = v
	if total > hl+rl {
		total = hl + rl
	}
	if len(b) > total {
		b = b[:total]
	}
	c := cursor{b: b, off: hl, end: hl + rl}
	checkFlags(p, v)
	switch p.Type {
	case CONNECT:
		decodeConnect(&c, p)
	case CONNACK:
		decodeConnack(&c, p, v)
	case PUBLISH:
		decodePublish(&c, p, v)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		decodeAck(&c, p, v)
	case SUBSCRIBE:
		decodeSubscribe(&c, p, v)
	case SUBACK:
		decodeSuback(&c, p, v)
	case UNSUBSCRIBE:
		decodeUnsubscribe(&c, p, v)
	case UNSUBACK:
		decodeUnsuback(&c, p, v)
	case PINGREQ, PINGRESP:
		// no variable header
	case DISCONNECT, AUTH:
		decodeDisconnectAuth(&c, p, v)
	case Reserved:
		p.Anomalies |= AnomalyUnassignedType
	}
	if c.short {
		if c.end > len(c.b) && c.off >= len(c.b) {
			// Ran into the part the caller did not buffer: not a protocol fault.
		} else {
			p.Anomalies |= AnomalyTruncated | AnomalyMalformedLength
		}
	} else if c.off < c.end && p.Type != PUBLISH && p.Type != Reserved {
		p.Anomalies |= AnomalyTrailingBytes | AnomalyMalformedLength
	}
}

// checkFlags validates the fixed-header flag bits. [MQTT-2.2.2-1], [MQTT-2.2.2-2]
func checkFlags(p *Packet, v Version) {
	flags := p.Header & 0x0f
	switch p.Type {
	case PUBLISH:
		p.Dup = flags&8 != 0
		p.QoS = (flags >> 1) & 3
		p.Retain = flags&1 != 0
		if p.QoS == 3 {
			p.Anomalies |= AnomalyInvalidQoS // [MQTT-3.3.1-4]
		}
		if p.Dup && p.QoS == 0 {
			p.Anomalies |= AnomalyReservedFlags // [MQTT-3.3.1-2]
		}
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		if v == V31 {
			p.Dup = flags&8 != 0
			p.QoS = (flags >> 1) & 3
		}
		if flags != 2 && !(v == V31 && flags&6 == 2) {
			p.Anomalies |= AnomalyReservedFlags
		}
	case AUTH:
		if v != V5 && v != VersionUnknown {
			p.Anomalies |= AnomalyUnassignedType
		}
		if flags != 0 {
			p.Anomalies |= AnomalyReservedFlags
		}
	default:
		if flags != 0 && !(v == V31 && p.Type != Reserved) {
			p.Anomalies |= AnomalyReservedFlags
		}
	}
}

// cursor is a sticky-error reader over one packet: after the first short read
// every read returns zero values and short stays set.
type cursor struct {
	b     []byte
	off   int
	end   int // end of the packet per its remaining length (may exceed len(b))
	short bool
}

func (c *cursor) avail() int {
	e := c.end
	if e > len(c.b) {
		e = len(c.b)
	}
	return e - c.off
}

func (c *cursor) remaining() int { return c.end - c.off }

func (c *cursor) u8() byte {
	if c.short || c.avail() < 1 {
		c.short = true
		return 0
	}
	v := c.b[c.off]
	c.off++
	return v
}

func (c *cursor) u16() uint16 {
	if c.short || c.avail() < 2 {
		c.short = true
		return 0
	}
	v := uint16(c.b[c.off])<<8 | uint16(c.b[c.off+1])
	c.off += 2
	return v
}

func (c *cursor) u32() uint32 {
	if c.short || c.avail() < 4 {
		c.short = true
		return 0
	}
	b := c.b[c.off:]
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	c.off += 4
	return v
}

func (c *cursor) bytes(n int) []byte {
	if n < 0 || c.short || c.avail() < n {
		c.short = true
		return nil
	}
	v := c.b[c.off : c.off+n : c.off+n]
	c.off += n
	return v
}

// varint reads an MQTT variable byte integer (at most four bytes).
func (c *cursor) varint() (uint32, bool) {
	var v uint32
	for i := 0; i < 4; i++ {
		b := c.u8()
		if c.short {
			return 0, false
		}
		v |= uint32(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, true
		}
	}
	return v, false
}

func checkUTF8(p *Packet, s []byte) {
	if !utf8.Valid(s) || bytes.IndexByte(s, 0) >= 0 {
		p.Anomalies |= AnomalyUTF8
	}
}

// checkTopicName is checkUTF8 and the wildcard test of a PUBLISH topic
// [MQTT-3.3.2-2] in one pass over its ASCII (profiling analyze: three scans
// of every topic, utf8.Valid, IndexByte and ContainsAny, were a third of
// decoding a PUBLISH).
func checkTopicName(p *Packet, s []byte) {
	for i, b := range s {
		if b >= utf8.RuneSelf { // past ASCII: the general checks on the rest
			checkUTF8(p, s[i:])
			if bytes.ContainsAny(s[i:], "#+") {
				p.Anomalies |= AnomalyWildcardPublish
			}
			return
		}
		switch b {
		case 0:
			p.Anomalies |= AnomalyUTF8
		case '#', '+':
			p.Anomalies |= AnomalyWildcardPublish
		}
	}
}

func decodeConnect(c *cursor, p *Packet) {
	nameLen := int(c.u16())
	p.ProtocolName = c.bytes(nameLen)
	p.ProtocolLevel = c.u8()
	if c.short {
		return
	}
	p.Present |= FieldProtocol
	lvl := Version(p.ProtocolLevel)
	p.Version = lvl
	switch {
	case string(p.ProtocolName) == "MQTT" && (lvl == V311 || lvl == V5):
	case string(p.ProtocolName) == "MQIsdp" && lvl == V31:
	case string(p.ProtocolName) == "MQTT" || string(p.ProtocolName) == "MQIsdp":
		p.Anomalies |= AnomalyProtocolLevel // [MQTT-3.1.2-2]
	default:
		p.Anomalies |= AnomalyProtocolName // [MQTT-3.1.2-1]
	}
	p.ConnectFlags = c.u8()
	if c.short {
		return
	}
	p.Present |= FieldConnectFlags
	fl := p.ConnectFlags
	if fl&1 != 0 {
		p.Anomalies |= AnomalyConnectReserved // [MQTT-3.1.2-3]
	}
	if fl&0x04 == 0 && fl&0x38 != 0 {
		p.Anomalies |= AnomalyWillFlags // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]
	}
	if (fl>>3)&3 == 3 {
		p.Anomalies |= AnomalyInvalidQoS // [MQTT-3.1.2-14]
	}
	if lvl == V311 && fl&0x40 != 0 && fl&0x80 == 0 {
		p.Anomalies |= AnomalyPasswordNoUser // [MQTT-3.1.2-22]
	}
	p.KeepAlive = c.u16()
	if c.short {
		return
	}
	p.Present |= FieldKeepAlive
	if lvl == V5 {
		decodeProperties(c, p, &p.Props)
		if c.short {
			return
		}
	}
	idLen := int(c.u16())
	if c.short {
		return
	}
	p.Present |= FieldClientIDLen
	p.ClientID = c.bytes(idLen)
	if c.short {
		return
	}
	p.Present |= FieldClientID
	checkUTF8(p, p.ClientID)
	if fl&0x04 != 0 {
		if lvl == V5 {
			decodeProperties(c, p, &p.WillProps)
		}
		wl := int(c.u16())
		p.WillTopic = c.bytes(wl)
		if c.short {
			return
		}
		p.Present |= FieldWillTopic
		checkUTF8(p, p.WillTopic)
		p.WillLen = int(c.u16())
		if c.short {
			return
		}
		p.Present |= FieldWillPayloadLen
		p.WillPayload = c.bytes(p.WillLen)
		if c.short {
			return
		}
		p.Present |= FieldWillPayload
	}
	if fl&0x80 != 0 && c.remaining() > 0 {
		ul := int(c.u16())
		p.Username = c.bytes(ul)
		if c.short {
			return
		}
		p.Present |= FieldUsername
		checkUTF8(p, p.Username)
	}
	if fl&0x40 != 0 && c.remaining() > 0 {
		pl := int(c.u16())
		p.PasswordLen = pl
		p.Password = c.bytes(pl)
		if c.short {
			return
		}
		p.Present |= FieldPassword
	}
}

func decodeConnack(c *cursor, p *Packet, v Version) {
	flags := c.u8()
	if c.short {
		return
	}
	p.AckFlags = flags // in 3.1 a reserved byte: kept, but not a field
	if v != V31 {
		p.Present |= FieldAckFlags
		if flags&0xfe != 0 {
			p.Anomalies |= AnomalyReservedFlags // [MQTT-3.2.2-1]
		}
	}
	p.ReasonCode = c.u8()
	if c.short {
		return
	}
	p.Present |= FieldReasonCode
	if v == V5 {
		if !validReason(CONNACK, p.ReasonCode) {
			p.Anomalies |= AnomalyReasonCode
		}
		decodeProperties(c, p, &p.Props)
	} else if p.ReasonCode > 5 && v != VersionUnknown {
		p.Anomalies |= AnomalyReasonCode // 3.x return codes are 0-5
	}
}

func decodePublish(c *cursor, p *Packet, v Version) {
	tl := int(c.u16())
	if c.short {
		return
	}
	p.Present |= FieldTopicLen
	if tl > 0 {
		p.Topic = c.bytes(tl)
		if c.short {
			return
		}
		p.Present |= FieldTopic
		checkTopicName(p, p.Topic)
	}
	if p.QoS > 0 {
		p.PacketID = c.u16()
		if c.short {
			return
		}
		p.Present |= FieldPacketID
		if p.PacketID == 0 {
			p.Anomalies |= AnomalyPacketIDZero // [MQTT-2.3.1-1]
		}
	}
	if v == V5 {
		decodeProperties(c, p, &p.Props)
		if c.short {
			return
		}
	}
	if tl == 0 && !p.Props.Has(PropTopicAlias) {
		p.Anomalies |= AnomalyEmptyTopic // [MQTT-4.7.3-1]
	}
	p.PayloadLen = c.remaining()
	if p.PayloadLen < 0 {
		p.PayloadLen = 0
	}
	start, n := c.off, c.avail()
	if n < 0 || start > len(c.b) {
		start, n = min(start, len(c.b)), 0
	}
	p.Payload = c.b[start : start+n : start+n]
	c.off = c.end
	p.Present |= FieldPayload
}

func decodeAck(c *cursor, p *Packet, v Version) {
	p.PacketID = c.u16()
	if c.short {
		return
	}
	p.Present |= FieldPacketID
	if p.PacketID == 0 {
		p.Anomalies |= AnomalyPacketIDZero
	}
	if v == V5 && p.RemainingLength > 2 {
		p.ReasonCode = c.u8()
		if c.short {
			return
		}
		p.Present |= FieldReasonCode
		if !validReason(p.Type, p.ReasonCode) {
			p.Anomalies |= AnomalyReasonCode
		}
		if p.RemainingLength > 3 {
			decodeProperties(c, p, &p.Props)
		}
	}
}

func decodeSubscribe(c *cursor, p *Packet, v Version) {
	p.PacketID = c.u16()
	if c.short {
		return
	}
	p.Present |= FieldPacketID
	if p.PacketID == 0 {
		p.Anomalies |= AnomalyPacketIDZero
	}
	if v == V5 {
		decodeProperties(c, p, &p.Props)
	}
	for !c.short && c.remaining() > 0 {
		fl := int(c.u16())
		if c.short {
			return
		}
		if len(p.Filters) == 0 {
			p.Present |= FieldTopicLen
		}
		f := c.bytes(fl)
		if c.short {
			return
		}
		if len(p.Filters) == 0 && fl > 0 {
			p.Present |= FieldTopic
		}
		opts := c.u8()
		if c.short {
			// tshark adds the topic before failing on the options byte; keep it.
			p.Filters = append(p.Filters, Subscription{Filter: f})
			p.Present |= FieldFilters
			return
		}
		p.Filters = append(p.Filters, Subscription{Filter: f, Options: opts})
		p.Present |= FieldFilters
		checkFilter(p, f)
		if opts&3 == 3 {
			p.Anomalies |= AnomalyInvalidQoS // [MQTT-3-8.3-4]
		}
		if (v != V5 && opts&0xfc != 0) || (v == V5 && opts&0xc0 != 0) {
			p.Anomalies |= AnomalyReservedFlags // [MQTT-3-8.3-5]
		}
	}
	if len(p.Filters) == 0 && !c.short {
		p.Anomalies |= AnomalyNoFilters // [MQTT-3.8.3-3]
	}
}

func decodeUnsubscribe(c *cursor, p *Packet, v Version) {
	p.PacketID = c.u16()
	if c.short {
		return
	}
	p.Present |= FieldPacketID
	if v == V5 {
		decodeProperties(c, p, &p.Props)
	}
	for !c.short && c.remaining() > 0 {
		fl := int(c.u16())
		if c.short {
			return
		}
		if len(p.Filters) == 0 {
			p.Present |= FieldTopicLen
		}
		f := c.bytes(fl)
		if c.short {
			return
		}
		if len(p.Filters) == 0 && fl > 0 {
			p.Present |= FieldTopic
		}
		p.Filters = append(p.Filters, Subscription{Filter: f})
		p.Present |= FieldFilters
		checkFilter(p, f)
	}
	if len(p.Filters) == 0 && !c.short {
		p.Anomalies |= AnomalyNoFilters // [MQTT-3.10.3-2]
	}
}

func decodeSuback(c *cursor, p *Packet, v Version) {
	p.PacketID = c.u16()
	if c.short {
		return
	}
	p.Present |= FieldPacketID
	if v == V5 {
		decodeProperties(c, p, &p.Props)
	}
	if c.short {
		return
	}
	n := max(min(c.remaining(), c.avail()), 0)
	p.ReasonCodes = c.bytes(n)
	p.Present |= FieldReasonCodes
	for _, rc := range p.ReasonCodes {
		if !validReason(SUBACK, rc) && !(v != V5 && rc <= 2) {
			p.Anomalies |= AnomalyReasonCode
		}
	}
	c.off = c.end
}

func decodeUnsuback(c *cursor, p *Packet, v Version) {
	p.PacketID = c.u16()
	if c.short {
		return
	}
	p.Present |= FieldPacketID
	if v == V5 {
		decodeProperties(c, p, &p.Props)
		if c.short {
			return
		}
		n := max(min(c.remaining(), c.avail()), 0)
		p.ReasonCodes = c.bytes(n)
		p.Present |= FieldReasonCodes
		c.off = c.end
	}
}

func decodeDisconnectAuth(c *cursor, p *Packet, v Version) {
	if v == V5 && p.RemainingLength > 0 {
		p.ReasonCode = c.u8()
		if c.short {
			return
		}
		p.Present |= FieldReasonCode
		if !validReason(p.Type, p.ReasonCode) {
			p.Anomalies |= AnomalyReasonCode
		}
		if p.RemainingLength >= 2 {
			decodeProperties(c, p, &p.Props)
		}
	}
}

// checkFilter validates a topic filter: '#' only as the last level on its own,
// '+' only as a whole level. [MQTT-4.7.1-1], [MQTT-4.7.1-2]
func checkFilter(p *Packet, f []byte) {
	checkUTF8(p, f)
	if len(f) == 0 {
		p.Anomalies |= AnomalyBadFilter // [MQTT-4.7.3-1]
		return
	}
	for i, ch := range f {
		switch ch {
		case '#':
			if i != len(f)-1 || (i > 0 && f[i-1] != '/') {
				p.Anomalies |= AnomalyBadFilter
			}
		case '+':
			if (i > 0 && f[i-1] != '/') || (i < len(f)-1 && f[i+1] != '/') {
				p.Anomalies |= AnomalyBadFilter
			}
		}
	}
}

// decodeProperties reads an MQTT 5 property list into pr. [MQTT-2.2.2]
func decodeProperties(c *cursor, p *Packet, pr *Properties) {
	l, ok := c.varint()
	if !ok {
		if !c.short {
			p.Anomalies |= AnomalyProperties
		}
		c.short = true
		return
	}
	pr.Len = int(l)
	if int(l) > c.remaining() {
		p.Anomalies |= AnomalyProperties
		c.short = true
		return
	}
	end := c.off + int(l)
	if end <= len(c.b) {
		pr.Raw = c.b[c.off:end:end]
	}
	p.Present |= FieldProperties
	for !c.short && c.off < end {
		id := c.u8()
		if id < 64 && pr.Seen&(1<<id) != 0 && id != PropUserProperty && id != PropSubscriptionID {
			p.Anomalies |= AnomalyProperties // duplicated property [MQTT-2.2.2-?]
		}
		if id < 64 {
			pr.Seen |= 1 << id
		}
		switch id {
		case PropPayloadFormat:
			pr.PayloadFormat = c.u8()
		case PropRequestProblemInfo:
			pr.RequestProblemInfo = c.u8()
		case PropRequestResponseInfo:
			pr.RequestResponseInfo = c.u8()
		case PropRetainAvailable:
			pr.RetainAvailable = c.u8()
		case PropWildcardSubAvailable:
			pr.WildcardSubAvailable = c.u8()
		case PropSubIDAvailable:
			pr.SubIDAvailable = c.u8()
		case PropSharedSubAvailable:
			pr.SharedSubAvailable = c.u8()
		case PropMaximumQoS:
			pr.MaximumQoS = c.u8()
		case PropTopicAlias:
			pr.TopicAlias = c.u16()
		case PropServerKeepAlive:
			pr.ServerKeepAlive = c.u16()
		case PropReceiveMaximum:
			pr.ReceiveMaximum = c.u16()
		case PropTopicAliasMaximum:
			pr.TopicAliasMaximum = c.u16()
		case PropMessageExpiry:
			pr.MessageExpiry = c.u32()
		case PropSessionExpiry:
			pr.SessionExpiry = c.u32()
		case PropWillDelay:
			pr.WillDelay = c.u32()
		case PropMaximumPacketSize:
			pr.MaximumPacketSize = c.u32()
		case PropSubscriptionID:
			v, ok := c.varint()
			if !ok {
				p.Anomalies |= AnomalyProperties
				c.short = true
			}
			pr.SubscriptionID = v
		case PropContentType:
			pr.ContentType = c.bytes(int(c.u16()))
		case PropResponseTopic:
			pr.ResponseTopic = c.bytes(int(c.u16()))
		case PropCorrelationData:
			pr.CorrelationData = c.bytes(int(c.u16()))
		case PropAssignedClientID:
			pr.AssignedClientID = c.bytes(int(c.u16()))
		case PropAuthMethod:
			pr.AuthMethod = c.bytes(int(c.u16()))
		case PropAuthData:
			pr.AuthData = c.bytes(int(c.u16()))
		case PropResponseInfo:
			pr.ResponseInfo = c.bytes(int(c.u16()))
		case PropServerReference:
			pr.ServerReference = c.bytes(int(c.u16()))
		case PropReasonString:
			pr.ReasonString = c.bytes(int(c.u16()))
		case PropUserProperty:
			c.bytes(int(c.u16()))
			c.bytes(int(c.u16()))
			pr.UserProperties++
		default:
			// Unknown identifier: the rest of the list cannot be parsed. [MQTT-2.2.2-?]
			p.Anomalies |= AnomalyProperties
			if end > len(c.b) {
				c.short = true
			} else {
				c.off = end
			}
		}
	}
	if c.off != end && !c.short {
		p.Anomalies |= AnomalyProperties
		if end > len(c.b) {
			c.short = true
		} else {
			c.off = end
		}
	}
	if c.short && c.off <= end && end <= len(c.b) {
		// A property overran the list; the list length still bounds the packet.
		p.Anomalies |= AnomalyProperties
	}
}

// validReason reports whether rc is a reason code MQTT 5 assigns to packets of type t. [MQTT-2.4]
func validReason(t Type, rc byte) bool {
	switch t {
	case CONNACK:
		return rc == 0 || (rc >= 0x80 && rc <= 0x9F && rc != 0x8B && rc != 0x8D && rc != 0x8E && rc != 0x8F && rc != 0x91 && rc != 0x92 && rc != 0x93 && rc != 0x94 && rc != 0x96 && rc != 0x98) || rc == 0x9F
	case PUBACK, PUBREC:
		switch rc {
		case 0, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99:
			return true
		}
	case PUBREL, PUBCOMP:
		return rc == 0 || rc == 0x92
	case SUBACK:
		switch rc {
		case 0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2:
			return true
		}
	case UNSUBACK:
		switch rc {
		case 0, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91:
			return true
		}
	case DISCONNECT:
		switch rc {
		case 0, 4, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2:
			return true
		}
	case AUTH:
		return rc == 0 || rc == 0x18 || rc == 0x19
	}
	return false
}

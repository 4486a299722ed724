// Package mqtt is iomtguard's MQTT codec: MQTT 3.1 (MQIsdp), 3.1.1 and 5.0, all
// fifteen control packet types, MQTT 5 properties and reason codes. One decoder
// serves captures and the gateway; an encoder (Append) writes what the decoder
// reads, for the simulator and round-trip tests.
//
// Decoding never panics and never allocates on the steady path: Decode fills a
// caller-owned Packet whose byte-slice fields alias the input. Problems found while
// decoding are recorded as Anomalies with the spec statement they break, and as
// much of the packet as could be read is kept (Present says which fields).
package mqtt

import "fmt"

// Type is the MQTT control packet type (the high nibble of the first byte).
type Type uint8

const (
	Reserved    Type = 0
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

var typeNames = [16]string{"Reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

func (t Type) String() string {
	if t < 16 {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// TypeByName maps "PUBLISH" (any case) to its Type.
func TypeByName(s string) (Type, bool) {
	for i, n := range typeNames {
		if equalFold(n, s) {
			return Type(i), true
		}
	}
	return 0, false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 32
		}
		if 'a' <= y && y <= 'z' {
			y -= 32
		}
		if x != y {
			return false
		}
	}
	return true
}

// Version is the protocol level of a connection.
type Version uint8

const (
	VersionUnknown Version = 0
	V31            Version = 3 // MQIsdp
	V311           Version = 4
	V5             Version = 5
)

func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	case VersionUnknown:
		return "unknown"
	}
	return fmt.Sprintf("level-%d", uint8(v))
}

// Subscription is one topic filter of a SUBSCRIBE or UNSUBSCRIBE.
type Subscription struct {
	Filter  []byte
	Options uint8 // requested QoS (bits 0-1); MQTT 5 no-local, retain-as-published, retain handling
}

// QoS returns the requested QoS.
func (s Subscription) QoS() uint8 { return s.Options & 3 }

// Field flags what a decoded packet contains (mirroring which tshark fields exist).
type Field uint32

const (
	FieldProtocol       Field = 1 << iota // protocol name and level (CONNECT)
	FieldConnectFlags                     // CONNECT flags
	FieldKeepAlive                        // CONNECT keep-alive
	FieldClientIDLen                      // client ID length (CONNECT)
	FieldClientID                         // client ID (CONNECT)
	FieldWillTopic                        // will topic (CONNECT)
	FieldWillPayloadLen                   // will message length (CONNECT)
	FieldWillPayload                      // will message (CONNECT)
	FieldUsername                         // user name (CONNECT)
	FieldPassword                         // password (CONNECT)
	FieldAckFlags                         // CONNACK acknowledge flags
	FieldReasonCode                       // CONNACK return code, or a v5 reason code
	FieldTopicLen                         // topic length (PUBLISH, first of SUBSCRIBE/UNSUBSCRIBE)
	FieldTopic                            // topic (PUBLISH, first of SUBSCRIBE/UNSUBSCRIBE)
	FieldPacketID                         // packet identifier
	FieldProperties                       // MQTT 5 properties
	FieldPayload                          // PUBLISH payload
	FieldFilters                          // at least one topic filter
	FieldReasonCodes                      // SUBACK/UNSUBACK list
)

// Packet is one decoded MQTT control packet. Byte slices alias the buffer given
// to Decode and are valid only as long as it is.
type Packet struct {
	Type            Type
	Header          byte // the whole first byte (tshark's mqtt.hdrflags)
	RemainingLength int  // mqtt.len
	LenBytes        int  // bytes used by the remaining-length field
	Version         Version
	Present         Field
	Anomalies       Anomalies

	// Fixed header flags of PUBLISH (also read for 3.1 PUBREL/SUBSCRIBE/UNSUBSCRIBE).
	Dup    bool
	QoS    uint8
	Retain bool

	PacketID uint16

	// CONNECT
	ProtocolName  []byte
	ProtocolLevel uint8 // mqtt.ver as sent (may be bogus)
	ConnectFlags  uint8
	KeepAlive     uint16
	ClientID      []byte
	WillTopic     []byte
	WillPayload   []byte
	WillLen       int
	Username      []byte
	// Password holds the password bytes for the gateway's own authentication.
	// It is secret: exporters and logs use only PasswordPresent and PasswordLen.
	Password    []byte
	PasswordLen int

	// CONNACK: AckFlags (session present is bit 0) and ReasonCode (3.x return code or v5 reason).
	AckFlags   uint8
	ReasonCode uint8

	// PUBLISH. AliasTopic is the topic name a topic alias stands for (MQTT 5),
	// filled in by the connection tracker when Topic is empty.
	AliasTopic []byte
	Topic      []byte
	Payload    []byte // the payload bytes held (may be a prefix: see PayloadLen)
	PayloadLen int    // true payload length

	// SUBSCRIBE, UNSUBSCRIBE: Filters; SUBACK, UNSUBACK: ReasonCodes.
	Filters     []Subscription
	ReasonCodes []byte

	Props     Properties
	WillProps Properties

	filterBuf [4]Subscription
}

// TopicName is the PUBLISH topic: Topic, or the one its alias stands for.
func (p *Packet) TopicName() []byte {
	if len(p.Topic) > 0 {
		return p.Topic
	}
	return p.AliasTopic
}

// SessionPresent reports the CONNACK session-present flag.
func (p *Packet) SessionPresent() bool { return p.Has(FieldAckFlags) && p.AckFlags&1 != 0 }

// PasswordPresent reports whether a CONNECT carried a password (or its flag).
func (p *Packet) PasswordPresent() bool { return p.ConnectFlags&0x40 != 0 }

// UsernamePresent reports whether a CONNECT carried a user name (or its flag).
func (p *Packet) UsernamePresent() bool { return p.ConnectFlags&0x80 != 0 }

// WillFlag reports the CONNECT will flag.
func (p *Packet) WillFlag() bool { return p.ConnectFlags&0x04 != 0 }

// CleanStart reports the CONNECT clean session / clean start flag.
func (p *Packet) CleanStart() bool { return p.ConnectFlags&0x02 != 0 }

// Has reports whether field f was decoded.
func (p *Packet) Has(f Field) bool { return p.Present&f != 0 }

// Refused reports whether a CONNACK refused the connection.
func (p *Packet) Refused() bool {
	return p.Type == CONNACK && p.Has(FieldReasonCode) && p.ReasonCode != 0
}

// AuthFailure reports whether a CONNACK refused the connection for bad
// credentials or lack of authorisation: 3.x return codes 4 and 5, MQTT 5 reason
// codes 0x86 (bad user name or password) and 0x87 (not authorized).
func (p *Packet) AuthFailure() bool {
	if p.Type != CONNACK || !p.Has(FieldReasonCode) {
		return false
	}
	switch p.ReasonCode {
	case 4, 5, 0x86, 0x87, 0x8C:
		return true
	}
	return false
}

// Properties holds MQTT 5 properties. Only what analysis and policy use is kept
// as values; UserProperties counts the user properties.
type Properties struct {
	Len                  int // property length as sent
	PayloadFormat        uint8
	MessageExpiry        uint32
	ContentType          []byte
	ResponseTopic        []byte
	CorrelationData      []byte
	SubscriptionID       uint32
	SessionExpiry        uint32
	AssignedClientID     []byte
	ServerKeepAlive      uint16
	AuthMethod           []byte
	AuthData             []byte
	RequestProblemInfo   uint8
	WillDelay            uint32
	RequestResponseInfo  uint8
	ResponseInfo         []byte
	ServerReference      []byte
	ReasonString         []byte
	ReceiveMaximum       uint16
	TopicAliasMaximum    uint16
	TopicAlias           uint16
	MaximumQoS           uint8
	RetainAvailable      uint8
	UserProperties       int
	MaximumPacketSize    uint32
	WildcardSubAvailable uint8
	SubIDAvailable       uint8
	SharedSubAvailable   uint8
	Seen                 uint64 // bit i set when property identifier i was present
	// Raw is the encoded property list (without its length) as decoded; the
	// encoder writes it back verbatim when set, so user properties survive a round trip.
	Raw []byte
}

// Has reports whether property id was present.
func (p *Properties) Has(id byte) bool { return id < 64 && p.Seen&(1<<id) != 0 }

// MQTT 5 property identifiers.
const (
	PropPayloadFormat        = 0x01
	PropMessageExpiry        = 0x02
	PropContentType          = 0x03
	PropResponseTopic        = 0x08
	PropCorrelationData      = 0x09
	PropSubscriptionID       = 0x0B
	PropSessionExpiry        = 0x11
	PropAssignedClientID     = 0x12
	PropServerKeepAlive      = 0x13
	PropAuthMethod           = 0x15
	PropAuthData             = 0x16
	PropRequestProblemInfo   = 0x17
	PropWillDelay            = 0x18
	PropRequestResponseInfo  = 0x19
	PropResponseInfo         = 0x1A
	PropServerReference      = 0x1C
	PropReasonString         = 0x1F
	PropReceiveMaximum       = 0x21
	PropTopicAliasMaximum    = 0x22
	PropTopicAlias           = 0x23
	PropMaximumQoS           = 0x24
	PropRetainAvailable      = 0x25
	PropUserProperty         = 0x26
	PropMaximumPacketSize    = 0x27
	PropWildcardSubAvailable = 0x28
	PropSubIDAvailable       = 0x29
	PropSharedSubAvailable   = 0x2A
)

// Reset clears p for reuse, keeping its internal buffers.
func (p *Packet) Reset() {
	f := p.Filters[:0]
	*p = Packet{}
	if cap(f) <= len(p.filterBuf) {
		f = p.filterBuf[:0]
	}
	p.Filters = f
}

// Clone returns a deep copy of p that does not alias any buffer, for consumers
// that keep packets beyond the event.
func (p *Packet) Clone() *Packet {
	c := *p
	c.ProtocolName = clone(p.ProtocolName)
	c.ClientID = clone(p.ClientID)
	c.WillTopic = clone(p.WillTopic)
	c.WillPayload = clone(p.WillPayload)
	c.Username = clone(p.Username)
	c.Password = clone(p.Password)
	c.Topic = clone(p.Topic)
	c.AliasTopic = clone(p.AliasTopic)
	c.Payload = clone(p.Payload)
	c.ReasonCodes = clone(p.ReasonCodes)
	c.Filters = make([]Subscription, len(p.Filters))
	for i, f := range p.Filters {
		c.Filters[i] = Subscription{Filter: clone(f.Filter), Options: f.Options}
	}
	c.Props = p.Props.clone()
	c.WillProps = p.WillProps.clone()
	return &c
}

func (pr Properties) clone() Properties {
	pr.ContentType = clone(pr.ContentType)
	pr.ResponseTopic = clone(pr.ResponseTopic)
	pr.CorrelationData = clone(pr.CorrelationData)
	pr.AssignedClientID = clone(pr.AssignedClientID)
	pr.AuthMethod = clone(pr.AuthMethod)
	pr.AuthData = clone(pr.AuthData)
	pr.ResponseInfo = clone(pr.ResponseInfo)
	pr.ServerReference = clone(pr.ServerReference)
	pr.ReasonString = clone(pr.ReasonString)
	pr.Raw = clone(pr.Raw)
	return pr
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// CopyTo makes dst a copy of p whose byte fields live in arena and whose
// filters live in subs (both appended to and returned): the pipeline's
// asynchronous hand-over copies a batch of packets without an allocation
// per packet. dst must not be used after arena or subs are reused.
func (p *Packet) CopyTo(dst *Packet, arena []byte, subs []Subscription) ([]byte, []Subscription) {
	*dst = *p
	cp := func(b []byte) []byte {
		if len(b) == 0 {
			return b[:0:0] // nil stays nil, empty stays empty; nothing shared
		}
		off := len(arena)
		arena = append(arena, b...)
		return arena[off:len(arena):len(arena)]
	}
	dst.ProtocolName = cp(p.ProtocolName)
	dst.ClientID = cp(p.ClientID)
	dst.WillTopic = cp(p.WillTopic)
	dst.WillPayload = cp(p.WillPayload)
	dst.Username = cp(p.Username)
	dst.Password = cp(p.Password)
	dst.Topic = cp(p.Topic)
	dst.AliasTopic = cp(p.AliasTopic)
	dst.Payload = cp(p.Payload)
	dst.ReasonCodes = cp(p.ReasonCodes)
	if len(p.Filters) == 0 {
		dst.Filters = p.Filters[:0:0]
	} else {
		off := len(subs)
		for _, f := range p.Filters {
			subs = append(subs, Subscription{Filter: cp(f.Filter), Options: f.Options})
		}
		dst.Filters = subs[off:len(subs):len(subs)]
	}
	for _, pr := range [2]*Properties{&dst.Props, &dst.WillProps} {
		pr.ContentType = cp(pr.ContentType)
		pr.ResponseTopic = cp(pr.ResponseTopic)
		pr.CorrelationData = cp(pr.CorrelationData)
		pr.AssignedClientID = cp(pr.AssignedClientID)
		pr.AuthMethod = cp(pr.AuthMethod)
		pr.AuthData = cp(pr.AuthData)
		pr.ResponseInfo = cp(pr.ResponseInfo)
		pr.ServerReference = cp(pr.ServerReference)
		pr.ReasonString = cp(pr.ReasonString)
		pr.Raw = cp(pr.Raw)
	}
	return arena, subs
}

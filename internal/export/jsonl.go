package export

import (
	"bufio"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// JSONLOptions configure the JSON lines exporter.
type JSONLOptions struct {
	// Payloads includes PUBLISH and will payloads (as text when printable
	// UTF-8, else hex), cut at PayloadMax bytes. Off by default: payloads on
	// clinical topics are patient data. payload_len always gives the true length.
	Payloads   bool
	PayloadMax int // default 256
}

// JSONL writes one JSON object per MQTT control packet. Passwords are never
// written: only password_present.
type JSONL struct {
	pipeline.Nop
	w    *bufio.Writer
	opts JSONLOptions
	buf  []byte
	err  error
	N    int64
}

// NewJSONL returns an exporter writing to w.
func NewJSONL(w io.Writer, opts JSONLOptions) *JSONL {
	if opts.PayloadMax <= 0 {
		opts.PayloadMax = 256
	}
	return &JSONL{w: bufio.NewWriterSize(w, 1<<20), opts: opts}
}

// Close flushes the output.
func (j *JSONL) Close() error {
	if j.err != nil {
		return j.err
	}
	return j.w.Flush()
}

// OnMQTT writes the packet.
func (j *JSONL) OnMQTT(ev *pipeline.MQTT) {
	if j.err != nil {
		return
	}
	p := ev.Pkt
	f := ev.Frame
	c := ev.Conn
	src, dst := c.Src(ev.Dir), c.Dst(ev.Dir)
	b := j.buf[:0]
	b = append(b, `{"ts":`...)
	b = strconv.AppendFloat(b, float64(f.TS)/1e9, 'f', 6, 64)
	b = append(b, `,"time":`...)
	b = appendJSONString(b, time.Unix(0, f.TS).UTC().Format(time.RFC3339Nano))
	b = append(b, `,"frame":`...)
	b = strconv.AppendInt(b, int64(f.Num), 10)
	b = append(b, `,"stream":`...)
	b = strconv.AppendInt(b, int64(c.Index), 10)
	b = append(b, `,"src":"`...)
	b = src.Addr().AppendTo(b)
	b = append(b, `","dst":"`...)
	b = dst.Addr().AppendTo(b)
	b = append(b, `","sport":`...)
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, `,"dport":`...)
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	if ev.FromClient {
		b = append(b, `,"dir":"to_broker"`...)
	} else {
		b = append(b, `,"dir":"to_client"`...)
	}
	b = append(b, `,"msgtype":`...)
	b = strconv.AppendUint(b, uint64(p.Type), 10)
	b = append(b, `,"type":"`...)
	b = append(b, p.Type.String()...)
	b = append(b, `","version":"`...)
	b = append(b, ev.Session.Version.String()...)
	b = append(b, `","hdrflags":"0x`...)
	b = append(b, hexdigits[p.Header>>4], hexdigits[p.Header&0xf])
	b = append(b, `","len":`...)
	b = strconv.AppendInt(b, int64(p.RemainingLength), 10)
	if ev.Session.ClientID != "" && p.Type != mqtt.CONNECT {
		b = append(b, `,"session_client_id":`...)
		b = appendJSONBytes(b, []byte(ev.Session.ClientID))
	}
	switch p.Type {
	case mqtt.CONNECT:
		b = j.connect(b, p)
	case mqtt.CONNACK:
		if p.Has(mqtt.FieldAckFlags) {
			b = append(b, `,"session_present":`...)
			b = strconv.AppendBool(b, p.SessionPresent())
		}
		if p.Has(mqtt.FieldReasonCode) {
			b = j.reason(b, ev.Session.Version, p.ReasonCode)
		}
	case mqtt.PUBLISH:
		b = append(b, `,"dup":`...)
		b = strconv.AppendBool(b, p.Dup)
		b = append(b, `,"qos":`...)
		b = strconv.AppendUint(b, uint64(p.QoS), 10)
		b = append(b, `,"retain":`...)
		b = strconv.AppendBool(b, p.Retain)
		if p.Has(mqtt.FieldTopicLen) {
			b = append(b, `,"topic":`...)
			b = appendJSONBytes(b, p.TopicName())
			if len(p.Topic) == 0 && p.Props.Has(mqtt.PropTopicAlias) {
				b = append(b, `,"topic_from_alias":true`...)
			}
		}
		b = j.packetID(b, p)
		if p.Has(mqtt.FieldPayload) {
			b = append(b, `,"payload_len":`...)
			b = strconv.AppendInt(b, int64(p.PayloadLen), 10)
			if j.opts.Payloads {
				b = j.payload(b, "payload", p.Payload)
			}
		}
	case mqtt.SUBSCRIBE, mqtt.UNSUBSCRIBE:
		b = j.packetID(b, p)
		b = append(b, `,"topics":[`...)
		for i, s := range p.Filters {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"filter":`...)
			b = appendJSONBytes(b, s.Filter)
			if p.Type == mqtt.SUBSCRIBE {
				b = append(b, `,"qos":`...)
				b = strconv.AppendUint(b, uint64(s.QoS()), 10)
				if ev.Session.Version == mqtt.V5 {
					b = append(b, `,"options":`...)
					b = strconv.AppendUint(b, uint64(s.Options), 10)
				}
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	case mqtt.SUBACK, mqtt.UNSUBACK:
		b = j.packetID(b, p)
		if p.Has(mqtt.FieldReasonCodes) {
			b = append(b, `,"reason_codes":[`...)
			for i, rc := range p.ReasonCodes {
				if i > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendUint(b, uint64(rc), 10)
			}
			b = append(b, ']')
		}
	case mqtt.PUBACK, mqtt.PUBREC, mqtt.PUBREL, mqtt.PUBCOMP:
		b = j.packetID(b, p)
		if p.Has(mqtt.FieldReasonCode) {
			b = j.reason(b, ev.Session.Version, p.ReasonCode)
		}
	case mqtt.DISCONNECT, mqtt.AUTH:
		if p.Has(mqtt.FieldReasonCode) {
			b = j.reason(b, ev.Session.Version, p.ReasonCode)
		}
	}
	if p.Has(mqtt.FieldProperties) {
		b = j.properties(b, &p.Props)
	}
	if p.Anomalies != 0 {
		b = append(b, `,"anomalies":[`...)
		first := true
		p.Anomalies.Each(func(a mqtt.Anomalies) {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = append(b, a.Name()...)
			b = append(b, '"')
		})
		b = append(b, ']')
	}
	b = append(b, "}\n"...)
	if _, err := j.w.Write(b); err != nil {
		j.err = err
	}
	j.buf = b
	j.N++
}

func (j *JSONL) connect(b []byte, p *mqtt.Packet) []byte {
	if p.Has(mqtt.FieldProtocol) {
		b = append(b, `,"protocol":`...)
		b = appendJSONBytes(b, p.ProtocolName)
		b = append(b, `,"level":`...)
		b = strconv.AppendUint(b, uint64(p.ProtocolLevel), 10)
	}
	if p.Has(mqtt.FieldConnectFlags) {
		b = append(b, `,"conflags":"0x`...)
		b = append(b, hexdigits[p.ConnectFlags>>4], hexdigits[p.ConnectFlags&0xf], '"')
		b = append(b, `,"clean_start":`...)
		b = strconv.AppendBool(b, p.CleanStart())
		b = append(b, `,"username_present":`...)
		b = strconv.AppendBool(b, p.UsernamePresent())
		b = append(b, `,"password_present":`...)
		b = strconv.AppendBool(b, p.PasswordPresent())
		b = append(b, `,"will":`...)
		b = strconv.AppendBool(b, p.WillFlag())
	}
	if p.Has(mqtt.FieldKeepAlive) {
		b = append(b, `,"keepalive":`...)
		b = strconv.AppendUint(b, uint64(p.KeepAlive), 10)
	}
	if p.Has(mqtt.FieldClientID) {
		b = append(b, `,"client_id":`...)
		b = appendJSONBytes(b, p.ClientID)
		b = append(b, `,"client_id_len":`...)
		b = strconv.AppendInt(b, int64(len(p.ClientID)), 10)
	}
	if p.Has(mqtt.FieldUsername) {
		b = append(b, `,"username":`...)
		b = appendJSONBytes(b, p.Username)
	}
	if p.Has(mqtt.FieldWillTopic) {
		b = append(b, `,"will_topic":`...)
		b = appendJSONBytes(b, p.WillTopic)
		b = append(b, `,"will_qos":`...)
		b = strconv.AppendUint(b, uint64(p.ConnectFlags>>3&3), 10)
		b = append(b, `,"will_retain":`...)
		b = strconv.AppendBool(b, p.ConnectFlags&0x20 != 0)
	}
	if p.Has(mqtt.FieldWillPayloadLen) {
		b = append(b, `,"will_payload_len":`...)
		b = strconv.AppendInt(b, int64(p.WillLen), 10)
		if j.opts.Payloads && p.Has(mqtt.FieldWillPayload) {
			b = j.payload(b, "will_payload", p.WillPayload)
		}
	}
	return b
}

func (j *JSONL) packetID(b []byte, p *mqtt.Packet) []byte {
	if !p.Has(mqtt.FieldPacketID) {
		return b
	}
	b = append(b, `,"packet_id":`...)
	return strconv.AppendUint(b, uint64(p.PacketID), 10)
}

func (j *JSONL) reason(b []byte, v mqtt.Version, rc byte) []byte {
	if v == mqtt.V5 {
		b = append(b, `,"reason_code":`...)
	} else {
		b = append(b, `,"return_code":`...)
	}
	return strconv.AppendUint(b, uint64(rc), 10)
}

func (j *JSONL) payload(b []byte, key string, v []byte) []byte {
	cut := v
	if len(cut) > j.opts.PayloadMax {
		cut = cut[:j.opts.PayloadMax]
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	if utf8.Valid(cut) && printable(cut) {
		b = append(b, `":`...)
		b = appendJSONBytes(b, cut)
	} else {
		b = append(b, `_hex":"`...)
		for _, c := range cut {
			b = append(b, hexdigits[c>>4], hexdigits[c&0xf])
		}
		b = append(b, '"')
	}
	if len(cut) < len(v) {
		b = append(b, `,"`...)
		b = append(b, key...)
		b = append(b, `_truncated":true`...)
	}
	return b
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

func (j *JSONL) properties(b []byte, pr *mqtt.Properties) []byte {
	b = append(b, `,"properties":{`...)
	n := 0
	num := func(k string, v uint64) {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, v, 10)
	}
	str := func(k string, v []byte) {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":`...)
		b = appendJSONBytes(b, v)
	}
	if pr.Has(mqtt.PropSessionExpiry) {
		num("session_expiry", uint64(pr.SessionExpiry))
	}
	if pr.Has(mqtt.PropReceiveMaximum) {
		num("receive_maximum", uint64(pr.ReceiveMaximum))
	}
	if pr.Has(mqtt.PropMaximumPacketSize) {
		num("maximum_packet_size", uint64(pr.MaximumPacketSize))
	}
	if pr.Has(mqtt.PropTopicAlias) {
		num("topic_alias", uint64(pr.TopicAlias))
	}
	if pr.Has(mqtt.PropTopicAliasMaximum) {
		num("topic_alias_maximum", uint64(pr.TopicAliasMaximum))
	}
	if pr.Has(mqtt.PropMessageExpiry) {
		num("message_expiry", uint64(pr.MessageExpiry))
	}
	if pr.Has(mqtt.PropPayloadFormat) {
		num("payload_format", uint64(pr.PayloadFormat))
	}
	if pr.Has(mqtt.PropContentType) {
		str("content_type", pr.ContentType)
	}
	if pr.Has(mqtt.PropResponseTopic) {
		str("response_topic", pr.ResponseTopic)
	}
	if pr.Has(mqtt.PropAssignedClientID) {
		str("assigned_client_id", pr.AssignedClientID)
	}
	if pr.Has(mqtt.PropServerKeepAlive) {
		num("server_keep_alive", uint64(pr.ServerKeepAlive))
	}
	if pr.Has(mqtt.PropAuthMethod) {
		str("auth_method", pr.AuthMethod)
	}
	if pr.Has(mqtt.PropReasonString) {
		str("reason_string", pr.ReasonString)
	}
	if pr.Has(mqtt.PropSubscriptionID) {
		num("subscription_id", uint64(pr.SubscriptionID))
	}
	if pr.Has(mqtt.PropMaximumQoS) {
		num("maximum_qos", uint64(pr.MaximumQoS))
	}
	if pr.Has(mqtt.PropRetainAvailable) {
		num("retain_available", uint64(pr.RetainAvailable))
	}
	if pr.UserProperties > 0 {
		num("user_properties", uint64(pr.UserProperties))
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte { return appendJSONBytes(b, []byte(s)) }

// appendJSONBytes appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONBytes(b []byte, s []byte) []byte {
	b = append(b, '"')
	for len(s) > 0 {
		c := s[0]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexdigits[c>>4], hexdigits[c&0xf])
			default:
				b = append(b, c)
			}
			s = s[1:]
			continue
		}
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[:n]...)
		}
		s = s[n:]
	}
	return append(b, '"')
}

package mqtt

// Append encodes p and appends it to dst. The fixed-header flags come from
// p.Header when its type nibble matches p.Type (so decoded packets re-encode
// byte for byte), otherwise from Dup/QoS/Retain for PUBLISH and the required
// values for other types. MQTT 5 properties are written when p.Version is V5.
// Append does not validate: it can write malformed packets on purpose (the
// simulator's fuzzing attack uses that).
func Append(dst []byte, p *Packet) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0)
	dst = appendBody(dst, p)
	bodyLen := len(dst) - start - 5
	var hdr [5]byte
	hdr[0] = byte(p.Type)<<4 | headerFlags(p)
	n := 1 + putVarint(hdr[1:], bodyLen)
	copy(dst[start:], hdr[:n])
	copy(dst[start+n:], dst[start+5:])
	return dst[:len(dst)-(5-n)]
}

func headerFlags(p *Packet) byte {
	if p.Header>>4 == byte(p.Type) && p.Header != 0 {
		return p.Header & 0x0f
	}
	switch p.Type {
	case PUBLISH:
		var f byte
		if p.Dup {
			f |= 8
		}
		f |= (p.QoS & 3) << 1
		if p.Retain {
			f |= 1
		}
		return f
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		return 2
	}
	return 0
}

// putVarint writes v as an MQTT variable byte integer and returns its length.
func putVarint(b []byte, v int) int {
	n := 0
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v > 0 {
			c |= 0x80
		}
		b[n] = c
		n++
		if v == 0 || n == 4 {
			return n
		}
	}
}

func appendVarint(dst []byte, v int) []byte {
	var b [4]byte
	n := putVarint(b[:], v)
	return append(dst, b[:n]...)
}

func appendU16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendString(dst, s []byte) []byte {
	dst = appendU16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBody(dst []byte, p *Packet) []byte {
	v5 := p.Version == V5
	switch p.Type {
	case CONNECT:
		name, level := p.ProtocolName, p.ProtocolLevel
		if level == 0 {
			level = byte(p.Version)
			if level == 0 {
				level = byte(V311)
			}
		}
		if name == nil {
			name = []byte("MQTT")
			if level == byte(V31) {
				name = []byte("MQIsdp")
			}
		}
		dst = appendString(dst, name)
		dst = append(dst, level)
		flags := p.ConnectFlags
		if p.Username != nil {
			flags |= 0x80
		}
		if p.Password != nil {
			flags |= 0x40
		}
		dst = append(dst, flags)
		dst = appendU16(dst, p.KeepAlive)
		v5 = Version(level) == V5
		if v5 {
			dst = appendProperties(dst, &p.Props)
		}
		dst = appendString(dst, p.ClientID)
		if flags&0x04 != 0 {
			if v5 {
				dst = appendProperties(dst, &p.WillProps)
			}
			dst = appendString(dst, p.WillTopic)
			dst = appendString(dst, p.WillPayload)
		}
		if flags&0x80 != 0 {
			dst = appendString(dst, p.Username)
		}
		if flags&0x40 != 0 {
			dst = appendString(dst, p.Password)
		}
	case CONNACK:
		dst = append(dst, p.AckFlags, p.ReasonCode)
		if v5 {
			dst = appendProperties(dst, &p.Props)
		}
	case PUBLISH:
		dst = appendString(dst, p.Topic)
		qos := p.QoS
		if p.Header>>4 == byte(PUBLISH) && p.Header != 0 {
			qos = (p.Header >> 1) & 3
		}
		if qos > 0 {
			dst = appendU16(dst, p.PacketID)
		}
		if v5 {
			dst = appendProperties(dst, &p.Props)
		}
		dst = append(dst, p.Payload...)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		dst = appendU16(dst, p.PacketID)
		if v5 && (p.ReasonCode != 0 || p.Props.Seen != 0 || p.Props.Raw != nil) {
			dst = append(dst, p.ReasonCode)
			if p.Props.Seen != 0 || p.Props.Raw != nil {
				dst = appendProperties(dst, &p.Props)
			}
		}
	case SUBSCRIBE:
		dst = appendU16(dst, p.PacketID)
		if v5 {
			dst = appendProperties(dst, &p.Props)
		}
		for _, f := range p.Filters {
			dst = appendString(dst, f.Filter)
			dst = append(dst, f.Options)
		}
	case UNSUBSCRIBE:
		dst = appendU16(dst, p.PacketID)
		if v5 {
			dst = appendProperties(dst, &p.Props)
		}
		for _, f := range p.Filters {
			dst = appendString(dst, f.Filter)
		}
	case SUBACK:
		dst = appendU16(dst, p.PacketID)
		if v5 {
			dst = appendProperties(dst, &p.Props)
		}
		dst = append(dst, p.ReasonCodes...)
	case UNSUBACK:
		dst = appendU16(dst, p.PacketID)
		if v5 {
			dst = appendProperties(dst, &p.Props)
			dst = append(dst, p.ReasonCodes...)
		}
	case DISCONNECT, AUTH:
		if v5 && (p.ReasonCode != 0 || p.Props.Seen != 0 || p.Props.Raw != nil) {
			dst = append(dst, p.ReasonCode)
			if p.Props.Seen != 0 || p.Props.Raw != nil {
				dst = appendProperties(dst, &p.Props)
			}
		}
	}
	return dst
}

func appendProperties(dst []byte, pr *Properties) []byte {
	if pr.Raw != nil {
		dst = appendVarint(dst, len(pr.Raw))
		return append(dst, pr.Raw...)
	}
	var body [512]byte
	b := body[:0]
	has := pr.Has
	if has(PropPayloadFormat) {
		b = append(b, PropPayloadFormat, pr.PayloadFormat)
	}
	if has(PropMessageExpiry) {
		b = appendU32(append(b, PropMessageExpiry), pr.MessageExpiry)
	}
	if has(PropContentType) {
		b = appendString(append(b, PropContentType), pr.ContentType)
	}
	if has(PropResponseTopic) {
		b = appendString(append(b, PropResponseTopic), pr.ResponseTopic)
	}
	if has(PropCorrelationData) {
		b = appendString(append(b, PropCorrelationData), pr.CorrelationData)
	}
	if has(PropSubscriptionID) {
		b = appendVarint(append(b, PropSubscriptionID), int(pr.SubscriptionID))
	}
	if has(PropSessionExpiry) {
		b = appendU32(append(b, PropSessionExpiry), pr.SessionExpiry)
	}
	if has(PropAssignedClientID) {
		b = appendString(append(b, PropAssignedClientID), pr.AssignedClientID)
	}
	if has(PropServerKeepAlive) {
		b = appendU16(append(b, PropServerKeepAlive), pr.ServerKeepAlive)
	}
	if has(PropAuthMethod) {
		b = appendString(append(b, PropAuthMethod), pr.AuthMethod)
	}
	if has(PropAuthData) {
		b = appendString(append(b, PropAuthData), pr.AuthData)
	}
	if has(PropRequestProblemInfo) {
		b = append(b, PropRequestProblemInfo, pr.RequestProblemInfo)
	}
	if has(PropWillDelay) {
		b = appendU32(append(b, PropWillDelay), pr.WillDelay)
	}
	if has(PropRequestResponseInfo) {
		b = append(b, PropRequestResponseInfo, pr.RequestResponseInfo)
	}
	if has(PropResponseInfo) {
		b = appendString(append(b, PropResponseInfo), pr.ResponseInfo)
	}
	if has(PropServerReference) {
		b = appendString(append(b, PropServerReference), pr.ServerReference)
	}
	if has(PropReasonString) {
		b = appendString(append(b, PropReasonString), pr.ReasonString)
	}
	if has(PropReceiveMaximum) {
		b = appendU16(append(b, PropReceiveMaximum), pr.ReceiveMaximum)
	}
	if has(PropTopicAliasMaximum) {
		b = appendU16(append(b, PropTopicAliasMaximum), pr.TopicAliasMaximum)
	}
	if has(PropTopicAlias) {
		b = appendU16(append(b, PropTopicAlias), pr.TopicAlias)
	}
	if has(PropMaximumQoS) {
		b = append(b, PropMaximumQoS, pr.MaximumQoS)
	}
	if has(PropRetainAvailable) {
		b = append(b, PropRetainAvailable, pr.RetainAvailable)
	}
	if has(PropMaximumPacketSize) {
		b = appendU32(append(b, PropMaximumPacketSize), pr.MaximumPacketSize)
	}
	if has(PropWildcardSubAvailable) {
		b = append(b, PropWildcardSubAvailable, pr.WildcardSubAvailable)
	}
	if has(PropSubIDAvailable) {
		b = append(b, PropSubIDAvailable, pr.SubIDAvailable)
	}
	if has(PropSharedSubAvailable) {
		b = append(b, PropSharedSubAvailable, pr.SharedSubAvailable)
	}
	dst = appendVarint(dst, len(b))
	return append(dst, b...)
}

// Set marks property id as present, for building packets to encode.
func (pr *Properties) Set(id byte) { pr.Seen |= 1 << id }

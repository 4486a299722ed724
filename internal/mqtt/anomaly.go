package mqtt

import "strings"

// Anomalies is a set of protocol violations found in one packet or on its
// connection, in the spirit of Suricata's MQTT protocol events.
type Anomalies uint32

const (
	// AnomalyMalformedLength: the remaining-length field is longer than four
	// bytes, or the fields do not fit the length it gives. [MQTT-1.5.5], [MQTT-2.2.3]
	AnomalyMalformedLength Anomalies = 1 << iota
	// AnomalyReservedFlags: fixed-header flag bits that must have a set value
	// do not. [MQTT-2.2.2-1], [MQTT-2.2.2-2]
	AnomalyReservedFlags
	// AnomalyInvalidQoS: a QoS of 3 in a PUBLISH, a will, or a subscription. [MQTT-3.3.1-4]
	AnomalyInvalidQoS
	// AnomalyUnassignedType: packet type 0, or 15 (AUTH) before MQTT 5.
	AnomalyUnassignedType
	// AnomalyDoubleConnect: a second CONNECT on one connection. [MQTT-3.1.0-2]
	AnomalyDoubleConnect
	// AnomalyMissingConnect: a packet other than CONNECT first on a connection
	// whose start was captured. [MQTT-3.1.0-1]
	AnomalyMissingConnect
	// AnomalyProtocolName: a CONNECT protocol name other than "MQTT" or "MQIsdp". [MQTT-3.1.2-1]
	AnomalyProtocolName
	// AnomalyProtocolLevel: a CONNECT protocol level other than 3, 4 or 5. [MQTT-3.1.2-2]
	AnomalyProtocolLevel
	// AnomalyConnectReserved: the CONNECT reserved flag is set. [MQTT-3.1.2-3]
	AnomalyConnectReserved
	// AnomalyWillFlags: will QoS or will retain set without the will flag. [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]
	AnomalyWillFlags
	// AnomalyPasswordNoUser: a password without a user name (3.1.1). [MQTT-3.1.2-22]
	AnomalyPasswordNoUser
	// AnomalyUTF8: a string is not well-formed UTF-8 or holds U+0000. [MQTT-1.5.3-1], [MQTT-1.5.3-2]
	AnomalyUTF8
	// AnomalyEmptyTopic: a PUBLISH topic of length 0 without a topic alias. [MQTT-4.7.3-1]
	AnomalyEmptyTopic
	// AnomalyWildcardPublish: a wildcard in a PUBLISH topic name. [MQTT-3.3.2-2]
	AnomalyWildcardPublish
	// AnomalyPacketIDZero: a packet identifier of 0 where one is required. [MQTT-2.3.1-1]
	AnomalyPacketIDZero
	// AnomalyNoFilters: a SUBSCRIBE or UNSUBSCRIBE without topic filters. [MQTT-3.8.3-3], [MQTT-3.10.3-2]
	AnomalyNoFilters
	// AnomalyProperties: malformed, unknown or duplicated MQTT 5 properties. [MQTT-2.2.2]
	AnomalyProperties
	// AnomalyTruncated: the packet ends before a field it announces.
	AnomalyTruncated
	// AnomalyTrailingBytes: bytes left over after the last field.
	AnomalyTrailingBytes
	// AnomalyBadFilter: a malformed topic filter ('#' not last, wildcards inside a level). [MQTT-4.7.1-1], [MQTT-4.7.1-2]
	AnomalyBadFilter
	// AnomalyOversize: a remaining length larger than the configured maximum packet size.
	AnomalyOversize
	// AnomalyStreamGap: data missing from the TCP stream inside or before this packet.
	AnomalyStreamGap
	// AnomalyReasonCode: a reason or return code that the spec does not assign for this packet.
	AnomalyReasonCode
	anomalyEnd
)

var anomalyNames = map[Anomalies]string{
	AnomalyMalformedLength: "malformed_length",
	AnomalyReservedFlags:   "reserved_flags",
	AnomalyInvalidQoS:      "invalid_qos",
	AnomalyUnassignedType:  "unassigned_type",
	AnomalyDoubleConnect:   "double_connect",
	AnomalyMissingConnect:  "missing_connect",
	AnomalyProtocolName:    "protocol_name",
	AnomalyProtocolLevel:   "protocol_level",
	AnomalyConnectReserved: "connect_reserved_flag",
	AnomalyWillFlags:       "will_flags",
	AnomalyPasswordNoUser:  "password_without_username",
	AnomalyUTF8:            "invalid_utf8",
	AnomalyEmptyTopic:      "empty_topic",
	AnomalyWildcardPublish: "wildcard_in_publish",
	AnomalyPacketIDZero:    "packet_id_zero",
	AnomalyNoFilters:       "no_topic_filters",
	AnomalyProperties:      "bad_properties",
	AnomalyTruncated:       "truncated",
	AnomalyTrailingBytes:   "trailing_bytes",
	AnomalyBadFilter:       "bad_topic_filter",
	AnomalyOversize:        "oversize",
	AnomalyStreamGap:       "stream_gap",
	AnomalyReasonCode:      "unassigned_reason_code",
}

// Names lists the set's anomalies by their stable names (as in JSON exports).
func (a Anomalies) Names() []string {
	var out []string
	for b := Anomalies(1); b < anomalyEnd; b <<= 1 {
		if a&b != 0 {
			out = append(out, anomalyNames[b])
		}
	}
	return out
}

// Each calls fn for every anomaly in the set, in a fixed order.
func (a Anomalies) Each(fn func(Anomalies)) {
	for b := Anomalies(1); b < anomalyEnd; b <<= 1 {
		if a&b != 0 {
			fn(b)
		}
	}
}

// Name is the stable name of a single anomaly.
func (a Anomalies) Name() string { return anomalyNames[a] }

func (a Anomalies) String() string { return strings.Join(a.Names(), ",") }

// AllAnomalies lists every single anomaly, in order.
func AllAnomalies() []Anomalies {
	var out []Anomalies
	for b := Anomalies(1); b < anomalyEnd; b <<= 1 {
		out = append(out, b)
	}
	return out
}

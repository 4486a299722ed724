// Package dataset is the schema of the IoT Healthcare Security Dataset (Hussain
// et al., Sensors 2021), the ICU traffic the seed study analysed: a tshark field
// export of 50 fields (tshark -T fields -E header=y -E separator=, -E quote=d
// -E occurrence=f) plus the dataset's `class` and `label` columns.
//
// The released CSV files differ from a raw tshark export in three ways, which
// the reader accepts and the writer can reproduce: tcp.connection.synack is
// named tcp.connection.sack, empty cells are filled with 0 (so that a field's
// absence and a zero cannot be told apart), and numbers went through pandas
// (hex flags as 0x%08x, floats such as 5.3e-05, integers such as 23.0, the TCP
// payload as colon-separated hex).
package dataset

// Column indexes in the released header's order.
const (
	ColTimeDelta = iota
	ColTimeRelative
	ColFrameLen
	ColIPSrc
	ColIPDst
	ColSrcPort
	ColDstPort
	ColTCPFlags
	ColTCPTimeDelta
	ColTCPLen
	ColTCPAck
	ColConnFin
	ColConnRst
	ColConnSynAck
	ColConnSyn
	ColFlagAck
	ColFlagFin
	ColFlagPush
	ColFlagReset
	ColFlagSyn
	ColFlagUrg
	ColHdrLen
	ColPayload
	ColPDUSize
	ColWindow
	ColChecksum
	ColClientID
	ColClientIDLen
	ColConackFlags
	ColConackVal
	ColConflagPasswd
	ColConflagQoS
	ColConflagReserved
	ColConflagRetain
	ColConflagWillflag
	ColConflags
	ColDupflag
	ColHdrflags
	ColKalive
	ColMQTTLen
	ColMsg
	ColMsgtype
	ColQoS
	ColRetain
	ColTopic
	ColTopicLen
	ColVer
	ColWillmsgLen
	ColIPProto
	ColIPTTL
	ColClass
	ColLabel
	NumColumns
)

// Header is the released CSV header, in order (52 columns).
var Header = [NumColumns]string{
	"frame.time_delta", "frame.time_relative", "frame.len", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport",
	"tcp.flags", "tcp.time_delta", "tcp.len", "tcp.ack", "tcp.connection.fin", "tcp.connection.rst",
	"tcp.connection.sack", "tcp.connection.syn", "tcp.flags.ack", "tcp.flags.fin", "tcp.flags.push",
	"tcp.flags.reset", "tcp.flags.syn", "tcp.flags.urg", "tcp.hdr_len", "tcp.payload", "tcp.pdu.size",
	"tcp.window_size_value", "tcp.checksum", "mqtt.clientid", "mqtt.clientid_len", "mqtt.conack.flags",
	"mqtt.conack.val", "mqtt.conflag.passwd", "mqtt.conflag.qos", "mqtt.conflag.reserved", "mqtt.conflag.retain",
	"mqtt.conflag.willflag", "mqtt.conflags", "mqtt.dupflag", "mqtt.hdrflags", "mqtt.kalive", "mqtt.len",
	"mqtt.msg", "mqtt.msgtype", "mqtt.qos", "mqtt.retain", "mqtt.topic", "mqtt.topic_len", "mqtt.ver",
	"mqtt.willmsg_len", "ip.proto", "ip.ttl", "class", "label",
}

// TsharkField is the tshark field name behind each of the first 50 columns
// (tcp.connection.sack is tshark's tcp.connection.synack).
func TsharkField(col int) string {
	if col == ColConnSynAck {
		return "tcp.connection.synack"
	}
	return Header[col]
}

// ColumnIndex maps a header name (either spelling of the SYN-ACK column) to its column.
func ColumnIndex(name string) (int, bool) {
	if name == "tcp.connection.synack" {
		return ColConnSynAck, true
	}
	for i, h := range Header {
		if h == name {
			return i, true
		}
	}
	return 0, false
}

// Classes are the dataset's traffic classes (the `class` column).
var Classes = []string{"environmentMonitoring", "patientMonitoring", "Attack"}

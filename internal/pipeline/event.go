// Package pipeline turns inputs (captures, ICU dataset CSVs) into one stream of
// typed events, produced once in a single pass and fanned out to every
// consumer: exporters, aggregators, detectors. Every iomtguard command is this
// pipeline with different consumers attached.
//
// Events are delivered synchronously, in capture order. For each frame the
// MQTT, TLS, flow and anomaly events it causes come first and its Frame event
// last, so a consumer that needs a frame's MQTT packets can collect them and act
// on the Frame event. Events and everything they point to are reused by the
// producer: a consumer that keeps anything must copy it (mqtt.Packet.Clone).
package pipeline

import (
	"github.com/iomtguard/iomtguard/internal/dataset"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/packet"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
	"github.com/iomtguard/iomtguard/internal/tlsinfo"
)

// AppProto is what a TCP connection carries.
type AppProto uint8

const (
	ProtoUnknown AppProto = iota
	ProtoMQTT
	ProtoTLS
	ProtoOther
	ProtoWebSocket // WebSocket not (or not yet) carrying MQTT
)

func (p AppProto) String() string {
	return [...]string{"unknown", "mqtt", "tls", "other", "websocket"}[p]
}

// Transport is what carries a session's MQTT packets.
type Transport uint8

const (
	TransportTCP       Transport = iota // MQTT on TCP
	TransportWebSocket                  // MQTT in WebSocket messages (RFC 6455), cleartext
)

func (t Transport) String() string { return [...]string{"tcp", "websocket"}[t] }

// Frame is one captured frame (or one row of an ICU dataset CSV).
type Frame struct {
	Num    int   // 1-based frame number over the whole run
	Source int   // index of the input it came from
	TS     int64 // ns since the Unix epoch (for CSV input: since the file's start)
	Rel    int64 // ns since the run's first frame (frame.time_relative)
	Delta  int64 // ns since the previous frame (frame.time_delta)
	CapLen int
	Len    int

	L   *packet.Frame      // decoded layers
	TCP *tcpstream.Segment // nil unless L is TCP

	Proto       AppProto // what the frame's TCP connection carries
	MQTTPackets int      // MQTT control packets completed in this frame
	PDUSize     int      // size of the first MQTT packet completed in this frame (tcp.pdu.size)

	// Secret lists the spans of the frame's TCP payload (L.Payload, or
	// Row.Payload) that hold credentials and must be masked in any output
	// of raw bytes (see MaskSecrets); nil when there are none.
	Secret []mqtt.Span

	// Row is the dataset row this frame was read from (ICU CSV input), else nil.
	Row *dataset.Row
}

// FromCSV reports whether the frame was read from an ICU dataset CSV.
func (f *Frame) FromCSV() bool { return f.Row != nil }

// Session is the MQTT state of one TCP connection.
type Session struct {
	// Level is the protocol level from the CONNECT as sent (tshark's
	// runtime version), 0 when no CONNECT was seen.
	Level mqtt.Version
	// Version is what packets are decoded with: Level, or a guess from the
	// traffic when the CONNECT was not captured.
	Version     mqtt.Version
	Guessed     bool
	Transport   Transport
	ClientDir   tcpstream.Dir // direction of client-to-broker packets
	ClientKnown bool          // ClientDir comes from a CONNECT, the TCP handshake, the broker port, a broker known from another connection, or a packet only one side sends
	ClientID    string
	Username    string
	Password    bool // a password was sent (never its value)
	KeepAlive   uint16
	CleanStart  bool
	Will        bool
	WillRetain  bool
	Connects    int
	ConnAck     bool  // a CONNACK was seen
	Accepted    bool  // the CONNACK accepted the connection
	ReturnCode  uint8 // CONNACK return or reason code
	Packets     [2]int64
	Publishes   int64
	Subscribes  int64
	Disconnect  bool // a DISCONNECT was seen
	Anomalies   mqtt.Anomalies
	First       bool // at least one packet seen
	Truncated   int  // packets cut by the end of the stream
	Lost        int  // packets lost to capture gaps
	framer      [2]mqtt.Framer
	aliases     [2]map[uint16][]byte // MQTT 5 topic aliases per direction
	gap         [2]bool              // bytes were lost in this direction since its last packet
	// One consumer's state for this session (Slot, SetSlot): found by a
	// field instead of a map keyed by the session (profiling analyze: the
	// detectors' map lookup for every packet was 6 % of the pass).
	slotOwner, slotVal any
}

// Slot returns what owner stored with SetSlot, or nil.
func (s *Session) Slot(owner any) any {
	if s.slotOwner == owner {
		return s.slotVal
	}
	return nil
}

// SetSlot stores v for owner when the slot is free or owner's already (a
// nil v frees it). One consumer per session has the slot; others keep
// their own maps.
func (s *Session) SetSlot(owner, v any) {
	switch {
	case s.slotOwner != nil && s.slotOwner != owner:
	case v == nil:
		s.slotOwner, s.slotVal = nil, nil
	default:
		s.slotOwner, s.slotVal = owner, v
	}
}

// copyFacts sets dst's exported fields to s's, and leaves dst's decoder
// state alone (Async gives consumers copies; TestSessionCopyFacts checks
// that every exported field is copied).
func (s *Session) copyFacts(dst *Session) {
	dst.Level, dst.Version, dst.Guessed, dst.Transport, dst.ClientDir, dst.ClientKnown = s.Level, s.Version, s.Guessed, s.Transport, s.ClientDir, s.ClientKnown
	dst.ClientID, dst.Username, dst.Password, dst.KeepAlive, dst.CleanStart, dst.Will, dst.WillRetain = s.ClientID, s.Username, s.Password, s.KeepAlive, s.CleanStart, s.Will, s.WillRetain
	dst.Connects, dst.ConnAck, dst.Accepted, dst.ReturnCode, dst.Packets, dst.Publishes, dst.Subscribes = s.Connects, s.ConnAck, s.Accepted, s.ReturnCode, s.Packets, s.Publishes, s.Subscribes
	dst.Disconnect, dst.Anomalies, dst.First, dst.Truncated, dst.Lost = s.Disconnect, s.Anomalies, s.First, s.Truncated, s.Lost
}

// MQTT is one MQTT control packet.
type MQTT struct {
	Frame      *Frame // the frame that completed the packet
	Conn       *tcpstream.Conn
	Dir        tcpstream.Dir
	FromClient bool
	Session    *Session
	Pkt        *mqtt.Packet
	Index      int  // position among the packets completed in the frame
	Gapped     bool // part of the packet was lost to a capture gap
}

// TLS reports handshake facts as they become visible.
type TLS struct {
	Frame *Frame
	Conn  *tcpstream.Conn
	Dir   tcpstream.Dir
	What  tlsinfo.Event
	Info  *tlsinfo.Handshake
}

// FlowKind says whether a flow opened or closed.
type FlowKind uint8

const (
	FlowOpened FlowKind = iota
	FlowClosed
)

// Flow reports a TCP connection opening or leaving the connection table.
type Flow struct {
	Kind    FlowKind
	Conn    *tcpstream.Conn
	Proto   AppProto
	Session *Session // nil unless MQTT
	TLS     *tlsinfo.Handshake
}

// AnomalyKind classifies capture and protocol problems.
type AnomalyKind uint8

const (
	AnomalyCaptureDamaged AnomalyKind = iota // the input is truncated or corrupt
	AnomalyBadRow                            // a dataset CSV row was skipped
	AnomalyStreamGap                         // TCP bytes missing from the capture
	AnomalyMQTTTruncated                     // an MQTT packet cut by the end of its stream
	AnomalyMQTTFraming                       // MQTT framing lost (bad length field): resynchronised
	AnomalyTLSMalformed                      // a stream that looked like TLS did not parse
	AnomalyMQTTLost                          // an MQTT packet lost part of its bytes to a gap
	AnomalyWebSocket                         // a WebSocket stream did not parse (framing, compression)
)

func (k AnomalyKind) String() string {
	return [...]string{"capture.damaged", "dataset.bad-row", "tcp.gap", "mqtt.truncated", "mqtt.framing", "tls.malformed", "mqtt.lost", "websocket.malformed"}[k]
}

// Anomaly is a capture or protocol problem that is not an MQTT packet anomaly
// (those travel on the MQTT event).
type Anomaly struct {
	Kind   AnomalyKind
	Frame  int   // frame number where it was noticed (0 if none)
	TS     int64 // ns
	Source int
	Conn   *tcpstream.Conn
	Dir    tcpstream.Dir
	Bytes  int // bytes involved (gap size, ...)
	Detail string
}

// Consumer receives events. Embed Nop to implement only what you need.
type Consumer interface {
	OnFrame(*Frame)
	OnMQTT(*MQTT)
	OnTLS(*TLS)
	OnFlow(*Flow)
	OnAnomaly(*Anomaly)
}

// Ticker is implemented by consumers that act as the capture clock
// advances: live sources send ticks when no frame arrives for a while, and
// the engine calls OnTick with the capture time (ns) of each tick.
type Ticker interface {
	OnTick(ts int64)
}

// Finisher is implemented by consumers that act once the pass is over.
type Finisher interface {
	Finish(*Summary)
}

// Nop implements Consumer with methods that do nothing.
type Nop struct{}

func (Nop) OnFrame(*Frame)     {}
func (Nop) OnMQTT(*MQTT)       {}
func (Nop) OnTLS(*TLS)         {}
func (Nop) OnFlow(*Flow)       {}
func (Nop) OnAnomaly(*Anomaly) {}

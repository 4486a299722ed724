package gateway

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// bridge feeds the gateway's own traffic to the detectors as the same events
// a capture produces (the gateway is a source, as DESIGN.md has it), and
// logs their attack findings to the audit log as they appear.
type bridge struct {
	mu       sync.Mutex
	det      *detect.Engine
	frames   int
	local    netip.AddrPort
	reported map[string]string // finding ID -> title last logged
	done     chan struct{}
	wg       sync.WaitGroup
}

// bridgeSession is one client's session as the detectors see it.
type bridgeSession struct {
	conn *tcpstream.Conn
	sess *pipeline.Session
}

func newBridge(det *detect.Engine) *bridge {
	return &bridge{det: det, reported: map[string]string{}, done: make(chan struct{})}
}

func (b *bridge) frame(now time.Time) *pipeline.Frame {
	b.frames++
	return &pipeline.Frame{Num: b.frames, TS: now.UnixNano()}
}

func (b *bridge) emit(s *bridgeSession, p *mqtt.Packet, fromClient bool, now time.Time) {
	s.conn.Last = now.UnixNano()
	d := tcpstream.FromA
	if !fromClient {
		d = tcpstream.FromB
	}
	s.conn.Stat[d].Packets++
	s.sess.Packets[d]++
	s.sess.First = true
	b.det.OnMQTT(&pipeline.MQTT{Frame: b.frame(now), Conn: s.conn, Dir: d, FromClient: fromClient, Session: s.sess, Pkt: p})
}

// connect reports a CONNECT and the gateway's answer (code 0: accepted).
func (b *bridge) connect(cl *mochi.Client, identity, src string, pk packets.Packet, code byte, now time.Time) *bridgeSession {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, _ := netip.ParseAddrPort(src)
	conn := &tcpstream.Conn{A: a, B: b.local, Start: now.UnixNano(), Last: now.UnixNano(), State: tcpstream.StateEstablished, SynSeen: true}
	conn.Stat[tcpstream.FromA].SYNs, conn.Stat[tcpstream.FromA].Packets, conn.Stat[tcpstream.FromB].Packets = 1, 2, 1
	v := mqtt.Version(pk.ProtocolVersion)
	// The client ID is copied: mochi decodes it as a string sharing the
	// whole CONNECT packet's memory, and the detectors keep it after the
	// session ends (the connect-flood detector, for every session: a
	// 200 KiB CONNECT pinned 200 KiB each).
	s := &bridgeSession{conn: conn, sess: &pipeline.Session{Level: v, Version: v, ClientDir: tcpstream.FromA, ClientKnown: true,
		ClientID: strings.Clone(cl.ID), Username: string(pk.Connect.Username), Password: pk.Connect.PasswordFlag, KeepAlive: pk.Connect.Keepalive,
		Connects: 1}}
	b.det.OnFlow(&pipeline.Flow{Kind: pipeline.FlowOpened, Conn: conn, Proto: pipeline.ProtoMQTT, Session: s.sess})
	flags := uint8(0)
	if pk.Connect.Clean {
		flags |= 0x02
	}
	if pk.Connect.UsernameFlag {
		flags |= 0x80
	}
	if pk.Connect.PasswordFlag {
		flags |= 0x40
	}
	b.emit(s, &mqtt.Packet{Type: mqtt.CONNECT, Version: v, ProtocolLevel: uint8(v), ConnectFlags: flags, KeepAlive: pk.Connect.Keepalive,
		ClientID: []byte(cl.ID), Username: pk.Connect.Username, Password: pk.Connect.Password,
		Present: mqtt.FieldProtocol | mqtt.FieldConnectFlags | mqtt.FieldClientID | mqtt.FieldUsername}, true, now)
	s.sess.ConnAck, s.sess.ReturnCode, s.sess.Accepted = true, code, code == 0
	b.emit(s, &mqtt.Packet{Type: mqtt.CONNACK, Version: v, ReasonCode: code, Present: mqtt.FieldReasonCode | mqtt.FieldAckFlags}, false, now)
	if code != 0 {
		conn.State, conn.Reason = tcpstream.StateClosed, tcpstream.ReasonFIN
		b.det.OnFlow(&pipeline.Flow{Kind: pipeline.FlowClosed, Conn: conn, Proto: pipeline.ProtoMQTT, Session: s.sess})
		return nil
	}
	return s
}

func (b *bridge) publish(s *bridgeSession, pk packets.Packet, now time.Time) {
	if s == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s.sess.Publishes++
	b.emit(s, &mqtt.Packet{Type: mqtt.PUBLISH, Version: s.sess.Version, QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain,
		Topic: []byte(pk.TopicName), Payload: pk.Payload, PayloadLen: len(pk.Payload), Present: mqtt.FieldTopic | mqtt.FieldPayload}, true, now)
}

func (b *bridge) subscribe(s *bridgeSession, filter string, granted bool, now time.Time) {
	if s == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s.sess.Subscribes++
	b.emit(s, &mqtt.Packet{Type: mqtt.SUBSCRIBE, Version: s.sess.Version, PacketID: 1,
		Filters: []mqtt.Subscription{{Filter: []byte(filter)}}, Present: mqtt.FieldFilters}, true, now)
	rc := byte(0)
	if !granted {
		rc = 0x80
	}
	b.emit(s, &mqtt.Packet{Type: mqtt.SUBACK, Version: s.sess.Version, PacketID: 1, ReasonCodes: []byte{rc}}, false, now)
}

func (b *bridge) disconnect(s *bridgeSession, now time.Time) {
	if s == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s.conn.Last = now.UnixNano()
	s.conn.State, s.conn.Reason = tcpstream.StateClosed, tcpstream.ReasonFIN
	b.det.OnFlow(&pipeline.Flow{Kind: pipeline.FlowClosed, Conn: s.conn, Proto: pipeline.ProtoMQTT, Session: s.sess})
}

func (b *bridge) start(g *Gateway, every time.Duration) {
	b.local, _ = netip.ParseAddrPort(g.Addr())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-b.done:
				return
			case <-t.C:
				b.report(g)
			}
		}
	}()
}

func (b *bridge) stop() {
	select {
	case <-b.done:
	default:
		close(b.done)
	}
	b.wg.Wait()
}

// report logs the attack findings that are new or have changed since the
// last report. (Posture findings do not apply: the gateway's traffic is TLS
// with certificates by construction.)
func (b *bridge) report(g *Gateway) {
	b.mu.Lock()
	fs := b.det.Findings(detect.Models{})
	b.mu.Unlock()
	for _, f := range fs {
		if !strings.HasPrefix(f.ID, "attack.") || b.reported[f.ID] == f.Title {
			continue
		}
		b.reported[f.ID] = f.Title
		g.metrics.findings.WithLabelValues(f.ID).Inc()
		g.audit.log(Record{Action: "finding", Verdict: "info", Reason: f.ID + " (" + string(f.Severity) + "): " + f.Title})
	}
}

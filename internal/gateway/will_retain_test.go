package gateway_test

import (
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/mqtt"
)

const retainPolicy = `devices:
  bed1-ecg:      {publish: ["icu/bed1/status/#"]}
  nurse-station: {subscribe: ["icu/+/status/#"]}
limits:
  handshake_timeout: 2s
  connects_per_minute_per_ip: 1000
  connects_per_minute_per_identity: 1000
  max_retained: 2
`

// TestWillMaxRetained: max_retained holds for wills as for a device's
// retained PUBLISH: past it, neither the immediate will (mochi's sendLWT)
// nor the delayed one the gateway publishes itself is retained. (Found by
// a review: with client_id prefix or any and a wildcard publish right,
// wills added retained messages without bound.)
func TestWillMaxRetained(t *testing.T) {
	tg := startCID(t, retainPolicy, "prefix")
	d := dialRaw(t, tg, "bed1-ecg")
	d.connectOK(mqtt.V5, "bed1-ecg", nil)
	full := false
	for i := 0; i < 5 && !full; i++ {
		d.publish("icu/bed1/status/p"+itoa(i), 1, true, []byte("held"), uint16(i+1))
		p := d.expect(mqtt.PUBACK)
		full = p.ReasonCode == 0x97
	}
	if !full {
		t.Fatal("max_retained never reached")
	}
	d.c.Close()
	for i, delay := range []uint32{0, 1} {
		w := dialRaw(t, tg, "bed1-ecg")
		w.connectOK(mqtt.V5, "bed1-ecg-"+itoa(i), func(p *mqtt.Packet) {
			delayedWill("icu/bed1/status/will"+itoa(i), "offline", delay, 60, true)(p)
			if delay == 0 {
				p.WillProps.Seen = 0
			}
			p.ConnectFlags |= 0x20 // will retain
		})
		w.c.Close()
	}
	time.Sleep(3 * time.Second)
	n := dialRaw(t, tg, "nurse-station")
	n.connectOK(mqtt.V5, "nurse-station", nil)
	n.send(&mqtt.Packet{Type: mqtt.SUBSCRIBE, PacketID: 2, Filters: []mqtt.Subscription{{Filter: []byte("icu/bed1/status/+"), Options: 1}}})
	var retained []string
	for {
		p, err := n.recv(2 * time.Second)
		if err != nil {
			break
		}
		if p.Type == mqtt.PUBLISH && p.Retain && len(p.Topic) > len("icu/bed1/status/will") && string(p.Topic[:20]) == "icu/bed1/status/will" {
			retained = append(retained, string(p.Topic))
		}
	}
	if len(retained) > 0 {
		t.Errorf("with max_retained reached (the device's retained PUBLISH refused 0x97), its wills were retained: %v", retained)
	}
}

// TestMaxRetainedNotSys: max_retained counts the devices' retained
// messages, not the broker's own $SYS ones (mochi keeps about 20). (Found
// by a review: a max_retained under 21 refused every device's retained
// message.)
func TestMaxRetainedNotSys(t *testing.T) {
	tg := startCID(t, retainPolicy, "identity")
	d := dialRaw(t, tg, "bed1-ecg")
	d.connectOK(mqtt.V5, "bed1-ecg", nil)
	var codes []byte
	for i := 0; i < 3; i++ {
		d.publish("icu/bed1/status/p"+itoa(i), 1, true, []byte("held"), uint16(i+1))
		codes = append(codes, d.expect(mqtt.PUBACK).ReasonCode)
	}
	if codes[0] != 0 || codes[1] != 0 || codes[2] != 0x97 {
		t.Errorf("three retained messages under max_retained 2: PUBACK codes % x, want 00 00 97", codes)
	}
}

// TestDisconnectWithWillShortForm: an MQTT 5 DISCONNECT with reason code
// 0x04 (disconnect with will message) and no property length (remaining
// length 1, allowed by 3.14.2.2.1; libmosquitto sends it so) publishes
// the will, as the long form does. (Found by a review: mochi reads the
// reason code only from a remaining length of 2 and dropped the will.)
func TestDisconnectWithWillShortForm(t *testing.T) {
	tg := startCID(t, retainPolicy, "identity")
	n := dialRaw(t, tg, "nurse-station")
	n.connectOK(mqtt.V5, "nurse-station", nil)
	n.subscribe(1, "icu/+/status/#")
	for _, form := range []struct {
		name  string
		bytes []byte
	}{{"short", []byte{0xe0, 1, 4}}, {"long", []byte{0xe0, 2, 4, 0}}} {
		d := dialRaw(t, tg, "bed1-ecg")
		d.connectOK(mqtt.V5, "bed1-ecg", func(p *mqtt.Packet) {
			p.ConnectFlags |= 0x04
			p.WillTopic, p.WillPayload = []byte("icu/bed1/status/will"), []byte("offline")
		})
		d.c.Write(form.bytes)
		if got := payloads(n, 2*time.Second); len(got) != 1 || got[0] != "icu/bed1/status/will=offline" {
			t.Errorf("DISCONNECT 0x04, %s form: got %v, want the will", form.name, got)
		}
		d.c.Close()
	}
}

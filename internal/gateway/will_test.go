package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/iomtguard/iomtguard/internal/gateway"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pki"
)

// TestWillBeforeApply: between a reload's store and its apply, the will of
// a client whose certificate was just revoked (or whose password was just
// changed) is refused, as its publishes are. (Found by a review: OnWill
// decided from the policy alone and sent it.)
func TestWillBeforeApply(t *testing.T) {
	will := func(p *mqtt.Packet) {
		p.ConnectFlags |= 0x04 // will, QoS 0
		p.WillTopic, p.WillPayload = []byte("icu/bed1/ecg"), []byte("lead off")
	}
	t.Run("revoked", func(t *testing.T) {
		tg := startAttack(t, attackPolicy)
		n := dialRaw(t, tg, "nurse-station")
		n.connectOK(mqtt.V5, "nurse-station", nil)
		n.subscribe(1, "icu/+/ecg")
		d := dialRaw(t, tg, "bed1-ecg")
		d.connectOK(mqtt.V311, "bed1-ecg", will)
		if err := tg.g.PutInForceOnly(func() {
			if err := pki.Revoke(tg.dir, "bed1-ecg", "key-compromise", pki.Options{}); err != nil {
				t.Error(err)
			}
		}); err != nil {
			t.Fatal(err)
		}
		// In force: the device's own publishes are refused (rightsIn)...
		d.publish("icu/bed1/ecg", 0, false, []byte("1"), 0)
		if got := n.received(time.Second); len(got) != 0 {
			t.Fatalf("revoked device's publish delivered: %v", got)
		}
		// ...but its will is not.
		d.c.Close()
		if got := n.received(2 * time.Second); len(got) != 0 {
			t.Errorf("between the reload's store and its apply, the will of a revoked certificate was delivered: %v", got)
		}
	})
	t.Run("password", func(t *testing.T) {
		pw := map[string]string{"bed1-ecg": "old secret", "nurse-station": "ns secret"}
		tg := startWith(t, attackPolicy, pw, attackNames, 0)
		login := func(user, pass string, extra func(*mqtt.Packet)) func(*mqtt.Packet) {
			return func(p *mqtt.Packet) {
				p.Username, p.Password = []byte(user), []byte(pass)
				if extra != nil {
					extra(p)
				}
			}
		}
		n := dialRaw(t, tg, "nurse-station")
		n.connectOK(mqtt.V5, "nurse-station", login("nurse-station", "ns secret", nil))
		n.subscribe(1, "icu/+/ecg")
		d := dialRaw(t, tg, "bed1-ecg")
		d.connectOK(mqtt.V311, "bed1-ecg", login("bed1-ecg", "old secret", will))
		if err := tg.g.PutInForceOnly(func() {
			if err := gateway.SetPassword(tg.dir+"/passwords", "bed1-ecg", "new secret"); err != nil {
				t.Error(err)
			}
		}); err != nil {
			t.Fatal(err)
		}
		d.publish("icu/bed1/ecg", 0, false, []byte("1"), 0)
		if got := n.received(time.Second); len(got) != 0 {
			t.Fatalf("publish under the changed password delivered: %v", got)
		}
		d.c.Close()
		if got := n.received(2 * time.Second); len(got) != 0 {
			t.Errorf("between the reload's store and its apply, the will of a session whose password was changed was delivered: %v", got)
		}
	})
}

// TestDelayedWill: an MQTT 5 will with a delay is decided again when the
// delay ends: one whose certificate was revoked within the delay is not
// sent (mochi, left to itself, queued the will when the connection dropped
// and sent it unchecked); one that still may is sent when the delay ends,
// not before; a reconnect within the delay withdraws it [MQTT-3.1.3-9].
func TestDelayedWill(t *testing.T) {
	tg := startAttack(t, attackPolicy)
	n := dialRaw(t, tg, "nurse-station")
	n.connectOK(mqtt.V5, "nurse-station", nil)
	n.subscribe(1, "icu/+/ecg")
	d := dialRaw(t, tg, "bed1-ecg")
	// A session expiry: without it the session, and so the delay, ends
	// at once [MQTT-3.1.2-8].
	d.connectOK(mqtt.V5, "bed1-ecg", delayedWill("icu/bed1/ecg", "lead off", 3, 60, true))
	d.c.Close()
	if got := n.received(time.Second); len(got) != 0 {
		t.Fatalf("the will was not delayed: %v", got)
	}
	if err := pki.Revoke(tg.dir, "bed1-ecg", "key-compromise", pki.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := tg.g.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := n.received(6 * time.Second); len(got) != 0 {
		t.Errorf("a delayed will was delivered after its certificate was revoked and the reload applied: %v", got)
	}
}

// TestDelayedWillSent: a delayed will nothing has changed for is sent by
// the gateway when its delay ends, not before, and one whose client
// reconnects within the delay is not sent at all.
func TestDelayedWillSent(t *testing.T) {
	tg := startAttack(t, attackPolicy)
	n := dialRaw(t, tg, "nurse-station")
	n.connectOK(mqtt.V5, "nurse-station", nil)
	n.subscribe(1, "icu/+/ecg")
	delayed := delayedWill("icu/bed1/ecg", "lead off", 2, 60, true)
	d := dialRaw(t, tg, "bed1-ecg")
	d.connectOK(mqtt.V5, "bed1-ecg", delayed)
	d.c.Close()
	if got := n.received(time.Second); len(got) != 0 {
		t.Fatalf("the will came before its delay: %v", got)
	}
	got := n.received(4 * time.Second)
	if len(got) != 1 || got[0] != "icu/bed1/ecg" {
		t.Fatalf("the delayed will: got %v, want one on icu/bed1/ecg", got)
	}

	// A reconnect within the delay withdraws it.
	d = dialRaw(t, tg, "bed1-ecg")
	d.connectOK(mqtt.V5, "bed1-ecg", delayed)
	d.c.Close()
	time.Sleep(500 * time.Millisecond)
	d = dialRaw(t, tg, "bed1-ecg")
	d.connectOK(mqtt.V5, "bed1-ecg", nil)
	if got := n.received(4 * time.Second); len(got) != 0 {
		t.Errorf("a will sent although its client came back within the delay: %v", got)
	}
}

// TestWillUserProperties: a will's user properties reach its subscriber
// whether the broker sends it at once or the gateway after its delay. (A
// held will kept topic and payload only: the delayed one arrived without
// them, unlike the same will with no delay.)
func TestWillUserProperties(t *testing.T) {
	tg := startAttack(t, attackPolicy)
	got := make(chan *paho.Publish, 4)
	n, _ := paho5(t, tg, "nurse-station", func(p *paho.Publish) { got <- p })
	if ca, err := n.Connect(context.Background(), &paho.Connect{ClientID: "nurse-station", KeepAlive: 30, CleanStart: true}); err != nil || ca.ReasonCode != 0 {
		t.Fatalf("subscriber: %v %+v", err, ca)
	}
	t.Cleanup(func() { n.Disconnect(&paho.Disconnect{}) })
	if _, err := n.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "icu/+/ecg"}}}); err != nil {
		t.Fatal(err)
	}
	for _, delay := range []uint32{0, 1} {
		d, dc := paho5(t, tg, "bed1-ecg", nil)
		expiry := uint32(60)
		payload := fmt.Sprintf("lead off, delay %d", delay)
		ca, err := d.Connect(context.Background(), &paho.Connect{ClientID: "bed1-ecg", KeepAlive: 30, CleanStart: true,
			Properties:     &paho.ConnectProperties{SessionExpiryInterval: &expiry},
			WillMessage:    &paho.WillMessage{Topic: "icu/bed1/ecg", Payload: []byte(payload)},
			WillProperties: &paho.WillProperties{WillDelayInterval: &delay, User: paho.UserProperties{{Key: "ward", Value: "icu"}, {Key: "bed", Value: "1"}}}})
		if err != nil || ca.ReasonCode != 0 {
			t.Fatalf("device: %v %+v", err, ca)
		}
		dc.Close() // dropped, no DISCONNECT: the will goes
		select {
		case p := <-got:
			if string(p.Payload) != payload {
				t.Errorf("delay %d: got %q", delay, p.Payload)
			}
			if p.Properties == nil || fmt.Sprint(p.Properties.User) != "[{ward icu} {bed 1}]" {
				t.Errorf("delay %d: the will's user properties: got %+v, want ward=icu, bed=1", delay, p.Properties)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("delay %d: no will", delay)
		}
	}
}

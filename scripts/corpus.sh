#!/usr/bin/env bash
# Builds a corpus of captures that no iomtguard test was written against,
# recorded from real MQTT software on loopback (Debian's mosquitto 2.0 and
# its clients, Eclipse Paho 3.1.1 and 5.0 in Go, MQTT.js with the aedes
# broker, mochi-mqtt's server), in several link types, over IPv4 and IPv6,
# with MQTT 3.1, 3.1.1 and 5.0 (properties), TLS 1.2 and 1.3, WebSocket,
# and damaged copies of them. scripts/corpus_check.py then checks iomtguard
# on every file against tshark.
#
#   scripts/corpus.sh DIR        (needs root for tcpdump, mosquitto, node, npm, go, openssl)
#
# Each capture's name says what it holds; DIR/benign.list names the ones a
# correct analysis must find no attack or anomaly in, DIR/decode-as holds
# tshark -d arguments per capture.
set -euo pipefail
dir=$(mkdir -p "${1:?usage: corpus.sh DIR}" && cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d); chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$root" && CGO_ENABLED=0 go build -o "$work/iomtguard" ./cmd/iomtguard)
cd "$work"
: > "$dir/benign.list"; : > "$dir/decode-as"

# record NAME IFACE PORT PROTO CMD...: runs CMD while tcpdump writes
# DIR/NAME.pcap of TCP port PORT, which tshark decodes as PROTO (mqtt, http, tls).
record() {
  local name=$1 iface=$2 port=$3 proto=$4; shift 4
  tcpdump -i "$iface" -U -w "$dir/$name.pcap" -s 0 "tcp port $port" 2>/dev/null & local td=$!
  sleep 0.7
  "$@" || true
  sleep 0.7; kill $td; wait $td 2>/dev/null || true
  echo "$name -d tcp.port==$port,$proto" >> "$dir/decode-as"
}
benign() { echo "$1" >> "$dir/benign.list"; }

broker() { # broker CONF-LINES... : a mosquitto with these lines, on its own config
  local conf="$work/m$RANDOM.conf"
  printf '%s\n' "$@" "persistence false" "log_dest none" > "$conf"
  mosquitto -c "$conf" & sleep 0.5
}

# 1-6: mosquitto and its clients, every protocol version, QoS, retain, will, properties.
broker "listener 21883 127.0.0.1" "allow_anonymous true"
session_v() {
  mosquitto_sub -h 127.0.0.1 -p 21883 -V "$1" -i "sub-$1" -t 'ward/#' -q 2 -C 6 -W 5 >/dev/null & local sub=$!
  sleep 0.3
  for q in 0 1 2; do mosquitto_pub -h 127.0.0.1 -p 21883 -V "$1" -i "pub-$1-$q" -t "ward/bed$q/spo2" -m "9$q" -q $q; done
  mosquitto_pub -h 127.0.0.1 -p 21883 -V "$1" -i "cfg-$1" -t ward/config -m '{"interval":2}' -r
  mosquitto_pub -h 127.0.0.1 -p 21883 -V "$1" -i "will-$1" -t ward/bed1/status -m up --will-topic ward/bed1/status --will-payload down -q 1
  wait $sub
}
for v in mqttv31 mqttv311 mqttv5; do record "mosquitto-$v" lo 21883 mqtt session_v $v; benign "mosquitto-$v"; done
v5props() {
  mosquitto_sub -h 127.0.0.1 -p 21883 -V mqttv5 -i props-sub -t 'icu/#' -D subscribe subscription-identifier 7 -D connect session-expiry-interval 60 -C 2 -W 5 >/dev/null & local sub=$!
  sleep 0.3
  mosquitto_pub -h 127.0.0.1 -p 21883 -V mqttv5 -i props-pub -t icu/bed1/ecg -m 72 -q 1 -D publish message-expiry-interval 30 \
    -D publish content-type application/json -D publish user-property unit icu3 -D publish response-topic icu/bed1/ack -D publish correlation-data abc
  mosquitto_pub -h 127.0.0.1 -p 21883 -V mqttv5 -i props-pub2 -t icu/bed2/ecg -m 70 -D connect receive-maximum 10 -D connect topic-alias-maximum 5 -D publish topic-alias 1
  wait $sub
}
record mosquitto-v5-properties lo 21883 mqtt v5props; benign mosquitto-v5-properties
big() { head -c 200000 /dev/urandom | base64 -w0 > "$work/big.txt"; mosquitto_pub -h 127.0.0.1 -p 21883 -i big -t icu/imaging/frame -f "$work/big.txt" -q 1; }
record mosquitto-large-payload lo 21883 mqtt big; benign mosquitto-large-payload
unsub() { mosquitto_sub -h 127.0.0.1 -p 21883 -i unsub -t 'a/#' -t 'b/+' -U 'a/#' -W 2 >/dev/null; }
record mosquitto-unsubscribe lo 21883 mqtt unsub; benign mosquitto-unsubscribe

# 7-8: IPv6, and a non-standard port (tshark needs -d).
broker "listener 21884 ::1" "allow_anonymous true"
v6() { mosquitto_sub -h ::1 -p 21884 -i v6-sub -t 'x/#' -C 3 -W 4 >/dev/null & local sub=$!; sleep 0.3; for i in 1 2 3; do mosquitto_pub -h ::1 -p 21884 -i "v6-$i" -t x/y -m "$i"; done; wait $sub; }
record mosquitto-ipv6 lo 21884 mqtt v6; benign mosquitto-ipv6
broker "listener 4444 127.0.0.1" "allow_anonymous true"
odd() { for i in 1 2 3; do mosquitto_pub -h 127.0.0.1 -p 4444 -i "odd-$i" -t p/q -m "$i" -q 1; done; }
record mosquitto-port-4444 lo 4444 mqtt odd; benign mosquitto-port-4444

# 9: link type Linux cooked v2 (tcpdump -i any).
record mosquitto-sll2 any 21883 mqtt session_v mqttv311; benign mosquitto-sll2

# Certificates from iomtguard pki for the TLS captures below.
"$work/iomtguard" pki init --dir "$work/ca" >/dev/null
"$work/iomtguard" pki issue --dir "$work/ca" --name broker --server --host 127.0.0.1 >/dev/null
"$work/iomtguard" pki issue --dir "$work/ca" --name bed1-ecg >/dev/null
chmod -R a+rX "$work/ca"


# 12-14: Eclipse Paho (Go) 3.1.1 and 5.0, and mochi-mqtt's own server program.
GOFLAGS=-mod=mod go run github.com/mochi-mqtt/server/v2/cmd@v2.7.9 -tcp 127.0.0.1:21885 -ws 127.0.0.1:21886 -info 127.0.0.1:21887 >/dev/null 2>&1 &
for i in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/21885) 2>/dev/null && break; sleep 0.2; done
cat > "$work/paho.go" <<'GO'
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	addr, v := os.Args[1], os.Args[2]
	if v == "tls12" { // MQTT 3.1.1 over TLS 1.2 with a client certificate: CA, certificate, key
		pool := x509.NewCertPool()
		ca, _ := os.ReadFile(os.Args[3])
		pool.AppendCertsFromPEM(ca)
		pair, err := tls.LoadX509KeyPair(os.Args[4], os.Args[5])
		if err != nil {
			panic(err)
		}
		o := paho3.NewClientOptions().AddBroker("ssl://" + addr).SetClientID("bed1-ecg").
			SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MaxVersion: tls.VersionTLS12})
		c := paho3.NewClient(o)
		if t := c.Connect(); t.Wait() && t.Error() != nil {
			panic(t.Error())
		}
		c.Publish("icu/bed1/ecg", 1, false, "72").Wait()
		c.Disconnect(100)
		return
	}
	if v == "3" {
		o := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("paho3-monitor").SetKeepAlive(5 * time.Second)
		c := paho3.NewClient(o)
		c.Connect().Wait()
		c.Subscribe("ward/+/hr", 1, nil).Wait()
		for i := 0; i < 5; i++ {
			c.Publish(fmt.Sprintf("ward/bed%d/hr", i), byte(i%3), false, "72").Wait()
		}
		time.Sleep(300 * time.Millisecond)
		c.Disconnect(100)
		return
	}
	conn, _ := net.Dial("tcp", addr)
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	c.Connect(context.Background(), &paho.Connect{ClientID: "paho5-pump", KeepAlive: 10, CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: new(uint32)}})
	c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ward/+/dose", QoS: 2}}})
	for i := 0; i < 5; i++ {
		c.Publish(context.Background(), &paho.Publish{Topic: "ward/bed1/dose", QoS: byte(i % 3), Payload: []byte("20"),
			Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "unit", Value: "ml/h"}}}})
	}
	time.Sleep(300 * time.Millisecond)
	c.Disconnect(&paho.Disconnect{})
}
GO
mkdir -p "$work/pahomod" && mv "$work/paho.go" "$work/pahomod/main.go"
( cd "$work/pahomod" && cp "$root/go.mod" "$root/go.sum" . && sed -i 's|^module .*|module pahocorpus|' go.mod && go build -o "$work/paho" . )
record paho3-mosquitto lo 21883 mqtt "$work/paho" 127.0.0.1:21883 3; benign paho3-mosquitto
record paho5-mosquitto lo 21883 mqtt "$work/paho" 127.0.0.1:21883 5; benign paho5-mosquitto
record paho5-mochi lo 21885 mqtt "$work/paho" 127.0.0.1:21885 5; benign paho5-mochi

# TLS 1.2 (Paho in Go, the client capping the version) and 1.3 (mosquitto_pub), client certificates.
for v in 1.2 1.3; do
  port=$([ $v = 1.2 ] && echo 8883 || echo 8884)
  broker "listener $port 127.0.0.1" "cafile $work/ca/ca.crt" "certfile $work/ca/broker.crt" "keyfile $work/ca/broker.key" \
    "require_certificate true" "use_identity_as_username true" "allow_anonymous false"
done
record mosquitto-tls1.2 lo 8883 tls "$work/paho" 127.0.0.1:8883 tls12 "$work/ca/ca.crt" "$work/ca/bed1-ecg.crt" "$work/ca/bed1-ecg.key"; benign mosquitto-tls1.2
tls13() { mosquitto_pub -h 127.0.0.1 -p 8884 --cafile "$work/ca/ca.crt" --cert "$work/ca/bed1-ecg.crt" --key "$work/ca/bed1-ecg.key" -t icu/bed1/ecg -m 72 -q 1; }
record mosquitto-tls1.3 lo 8884 tls tls13; benign mosquitto-tls1.3


# 15-16: MQTT.js with the aedes broker (TCP), and over WebSocket to mochi.
npm init -y >/dev/null; npm install --silent mqtt@5.16.0 aedes@0.51.3 >/dev/null 2>&1
cat > aedes.js <<'JS'
const aedes = require('aedes')()
require('net').createServer(aedes.handle).listen(21888, '127.0.0.1')
JS
node aedes.js & for i in $(seq 1 50); do (echo > /dev/tcp/127.0.0.1/21888) 2>/dev/null && break; sleep 0.2; done
cat > js.js <<'JS'
// Prints the packets this client sent and received, as "msgtype count"
// lines: the reference for MQTT inside WebSocket, which tshark cannot decode.
const mqtt = require('mqtt')
const [url, v] = [process.argv[2], +process.argv[3]]
const types = { connect: 1, connack: 2, publish: 3, puback: 4, pubrec: 5, pubrel: 6, pubcomp: 7, subscribe: 8, suback: 9, pingreq: 12, pingresp: 13, disconnect: 14 }
const n = {}
const count = (p) => { n[types[p.cmd]] = (n[types[p.cmd]] || 0) + 1 }
const c = mqtt.connect(url, { protocolVersion: v, clientId: 'mqttjs-' + v, keepalive: 10 })
c.on('packetsend', count)
c.on('packetreceive', (p) => { count(p); if (p.cmd === 'connack') count({ cmd: 'connect' }) })
const done = () => { for (const k of Object.keys(n).sort((a, b) => a - b)) console.log(k, n[k]); process.exit(0) }
c.on('connect', () => c.subscribe('ward/#', { qos: 1 }, () => {
  for (let i = 0; i < 5; i++) c.publish('ward/bed' + i + '/temp', '36.' + i, { qos: i % 3 })
  setTimeout(() => { c.end(); setTimeout(done, 300) }, 400)
}))
setTimeout(() => process.exit(1), 5000)
JS
record mqttjs-aedes lo 21888 mqtt node js.js mqtt://127.0.0.1:21888 4; benign mqttjs-aedes
wsrun() { node js.js ws://127.0.0.1:21886/ 5 > "$dir/mqttjs-ws-mochi.counts"; }
record mqttjs-ws-mochi lo 21886 http wsrun; benign mqttjs-ws-mochi

# 17-18: attacks by real tools (not benign): a password guesser and a '#' subscriber.
mosquitto_passwd -b -c "$work/pw" pump1 correct-horse 2>/dev/null; chmod 644 "$work/pw"
broker "listener 21889 127.0.0.1" "allow_anonymous false" "password_file $work/pw"
guess() { for pw in a b c d e f g h i j k l m n o p; do mosquitto_pub -h 127.0.0.1 -p 21889 -i guess -u pump1 -P "$pw" -t x -m y 2>/dev/null || true; done; }
record mosquitto-guessing lo 21889 mqtt guess
snoop() { mosquitto_sub -h 127.0.0.1 -p 21883 -i snoop -t '#' -t '$SYS/#' -W 2 >/dev/null; }
record mosquitto-snoop lo 21883 mqtt snoop

# 19-20: the simulator on Ethernet and a 20-bed ward (other link type, many hosts).
"$work/iomtguard" simulate --link ethernet --duration 2m --seed 7 -o "$dir/sim-ethernet.pcap" 2>/dev/null; benign sim-ethernet
"$work/iomtguard" simulate --beds 20 --duration 2m --seed 8 -o "$dir/sim-20beds.pcapng" 2>/dev/null; benign sim-20beds

# 21-26: damaged copies: cut at an odd byte, a record header garbled, gzip cut short.
python3 - "$dir" <<'PY'
import gzip, os, random, sys
d = sys.argv[1]
random.seed(1)
src = [f for f in sorted(os.listdir(d)) if f.startswith(("mosquitto-mqttv311", "paho5-mosquitto", "sim-ethernet")) and f.endswith(".pcap")]
for f in src:
    b = open(os.path.join(d, f), "rb").read()
    base = f[:-5]
    open(os.path.join(d, base + "-cut.pcap"), "wb").write(b[: len(b) * 2 // 3 + 7])
    g = bytearray(b); off = 24 + 16 + 60  # inside the second record's header or data
    g[off : off + 4] = b"\xff\xff\xff\x7f"
    open(os.path.join(d, base + "-garbled.pcap"), "wb").write(bytes(g))
z = open(os.path.join(d, "mosquitto-mqttv5.pcap"), "rb").read()
open(os.path.join(d, "mosquitto-mqttv5-cut.pcap.gz"), "wb").write(gzip.compress(z)[:-40])
PY
ls "$dir"/*.pcap* | wc -l | xargs echo "captures in $dir:"

#!/usr/bin/env bash
# Records MQTT over WebSocket between real software that iomtguard did not
# write, on loopback: the aedes broker (Node.js; MQTT 3.1.1) behind a ws
# server with permessage-deflate, mochi-mqtt's own server program (Go;
# MQTT 5, its WebSocket listener), and MQTT.js clients (3.1.1, two of them
# compressing, and 5.0) -> testdata/real/websocket-aedes.pcap, and the clients' own
# count of the packets they sent and received (MQTT.js 'packetsend' and
# 'packetreceive' events) -> testdata/real/websocket-aedes.counts, the
# reference the decoder is checked against (tshark 4.0 does not decode MQTT
# inside WebSocket). Debian 12's mosquitto is built without WebSocket
# support, so it cannot be the broker here. Needs root (tcpdump), node and npm.
set -euo pipefail
out=$(cd "$(dirname "$0")/.." && pwd)/testdata/real
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --silent mqtt@5.16.0 aedes@0.51.3 websocket-stream@5.5.2 >/dev/null 2>&1
cat > broker.js <<'JS'
const aedes = require('aedes')()
const http = require('http')
const ws = require('websocket-stream')
const server = http.createServer()
ws.createServer({ server, perMessageDeflate: { threshold: 0 } }, aedes.handle)
server.listen(18832, '127.0.0.1', () => console.log('listening'))
JS
cat > clients.js <<'JS'
const mqtt = require('mqtt')
const counts = {}
const count = (p) => { counts[p.cmd] = (counts[p.cmd] || 0) + 1 }
// MQTT.js emits no 'packetsend' for CONNECT: one per CONNACK received.
const watch = (c) => { c.on('packetsend', count); c.on('packetreceive', (p) => { count(p); if (p.cmd === 'connack') count({ cmd: 'connect' }) }); return c }
const aedes = 'ws://127.0.0.1:18832/mqtt'
const mochi = 'ws://127.0.0.1:18833/'
// On aedes (MQTT 3.1.1): a nurse dashboard (compressing) following every
// bed's ECG, and two bedside monitors, one compressing.
const dash = watch(mqtt.connect(aedes, { protocolVersion: 4, clientId: 'nurse-dashboard', keepalive: 30, wsOptions: { perMessageDeflate: { threshold: 0 } } }))
const beds = [1, 2].map((b) => watch(mqtt.connect(aedes, { protocolVersion: 4, clientId: 'bed' + b + '-monitor', keepalive: 30,
  username: 'bed' + b, password: 'secret' + b, wsOptions: { perMessageDeflate: b === 1 ? { threshold: 0 } : false } })))
// On mochi (MQTT 5): a mobile app following alarms, and a pump publishing them.
const app = watch(mqtt.connect(mochi, { protocolVersion: 5, clientId: 'mobile-app', keepalive: 30 }))
const pump = watch(mqtt.connect(mochi, { protocolVersion: 5, clientId: 'bed3-pump', keepalive: 30 }))
let ready = 0
const start = () => {
  if (++ready < 2) return
  let n = 0
  const timer = setInterval(() => {
    n++
    beds.forEach((c, i) => c.publish('ward3/bed' + (i + 1) + '/ecg', JSON.stringify({ hr: 60 + (n % 20), seq: n }), { qos: 1 }))
    if (n % 10 === 0) {
      beds[0].publish('ward3/bed1/alarm', 'lead off', { qos: 2, retain: true })
      pump.publish('ward3/bed3/alarm', 'occlusion', { qos: 2, properties: { messageExpiryInterval: 60, userProperties: { unit: 'icu3' } } })
    }
    if (n === 40) {
      clearInterval(timer)
      setTimeout(() => {
        for (const c of [dash, ...beds, app, pump]) c.end()
        setTimeout(() => { console.log(JSON.stringify(counts)); process.exit(0) }, 1000)
      }, 500)
    }
  }, 100)
}
dash.on('connect', () => dash.subscribe(['ward3/+/ecg', 'ward3/+/alarm'], { qos: 1 }, start))
app.on('connect', () => app.subscribe('ward3/+/alarm', { qos: 2 }, start))
JS
node broker.js > broker.log &
GOFLAGS=-mod=mod go run github.com/mochi-mqtt/server/v2/cmd@v2.7.9 -tcp 127.0.0.1:18834 -ws 127.0.0.1:18833 -info 127.0.0.1:18835 > mochi.log 2>&1 &
for p in 18832 18833; do for i in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.2; done; done
tcpdump -i lo -U -w "$work/websocket-aedes.pcap" -s 0 'tcp port 18832 or tcp port 18833' 2>/dev/null & TD=$!; sleep 1
node clients.js > counts.json 2> clients.err || { cat clients.err counts.json broker.log; exit 1; }
sleep 1; kill $TD; wait $TD 2>/dev/null || true
cp websocket-aedes.pcap "$out/"
# "msgtype count" lines as testdata/tshark/*.counts hold them.
python3 - counts.json > "$out/websocket-aedes.counts" <<'PY'
import json, sys
types = {"connect": 1, "connack": 2, "publish": 3, "puback": 4, "pubrec": 5, "pubrel": 6, "pubcomp": 7, "subscribe": 8,
         "suback": 9, "unsubscribe": 10, "unsuback": 11, "pingreq": 12, "pingresp": 13, "disconnect": 14, "auth": 15}
c = json.load(open(sys.argv[1]))
for name, n in sorted(c.items(), key=lambda kv: types[kv[0]]):
    print(types[name], n)
PY
echo "wrote $out/websocket-aedes.pcap and .counts: $(cat counts.json)"

#!/usr/bin/env bash
# Records captures of real MQTT software (Mosquitto 2 and its clients) on the
# loopback interface, for the detectors' tests on traffic iomtguard did not
# generate: testdata/real/mosquitto-ward.pcap (a benign ward: three bedside
# monitors streaming QoS 1 with credentials, an anonymous nurse station, a
# retained configuration message) and testdata/real/mosquitto-attacks.pcap
# (a password-protected broker: a device publishing, a dictionary attack with
# mosquitto_pub, a '#' subscription with stolen credentials). Needs root
# (tcpdump), mosquitto and mosquitto-clients. labels.yaml says what each
# capture must show.
set -euo pipefail
out=$(cd "$(dirname "$0")/.." && pwd)/testdata/real
work=$(mktemp -d)
chmod 755 "$work"   # mosquitto drops root for its own user and must read its files
trap 'pkill -f "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

cat > ward.conf <<CONF
listener 18830 127.0.0.1
allow_anonymous true
persistence false
log_dest none
CONF
mosquitto -c "$work/ward.conf" & sleep 0.5
tcpdump -i lo -U -w "$work/mosquitto-ward.pcap" -s 0 'tcp port 18830' 2>/dev/null & TD=$!; sleep 1
mosquitto_sub -h 127.0.0.1 -p 18830 -i nurse-station -t 'ward3/+/spo2' -q 1 >/dev/null & SUB=$!
for bed in 1 2 3; do
  ( for i in $(seq 1 40); do echo "{\"bed\":$bed,\"spo2\":$((94 + i % 5)),\"hr\":$((60 + i % 30))}"; sleep 0.5; done |
    mosquitto_pub -h 127.0.0.1 -p 18830 -i bed$bed-monitor -u bed$bed -P "secret$bed" -t ward3/bed$bed/spo2 -l -q 1 ) &
done
mosquitto_pub -h 127.0.0.1 -p 18830 -i config-tool -t ward3/config -m '{"interval":2}' -r
sleep 22; kill $SUB; sleep 1; kill $TD; wait $TD 2>/dev/null || true
pkill -f "$work/ward.conf"

mosquitto_passwd -b -c "$work/passwd" pump1 correct-horse
chmod 644 "$work/passwd"
cat > attacks.conf <<CONF
listener 18831 127.0.0.1
allow_anonymous false
password_file $work/passwd
persistence false
log_dest none
CONF
mosquitto -c "$work/attacks.conf" & sleep 0.5
tcpdump -i lo -U -w "$work/mosquitto-attacks.pcap" -s 0 'tcp port 18831' 2>/dev/null & TD=$!; sleep 1
mosquitto_sub -h 127.0.0.1 -p 18831 -i pump1 -u pump1 -P correct-horse -t 'icu/pump1/#' -W 20 >/dev/null 2>&1 &
( for i in $(seq 1 20); do echo "$i"; sleep 0.5; done | mosquitto_pub -h 127.0.0.1 -p 18831 -i pump1-rate -u pump1 -P correct-horse -t icu/pump1/rate -l ) &
sleep 2
for pw in 123456 password admin letmein qwerty medical hospital welcome pump1 pump123 icu2024 abc123 changeme; do
  mosquitto_pub -h 127.0.0.1 -p 18831 -i guess -u pump1 -P "$pw" -t x -m y 2>/dev/null || true
done
mosquitto_sub -h 127.0.0.1 -p 18831 -u pump1 -P correct-horse -t '#' -W 3 >/dev/null 2>&1 || true
sleep 8; kill $TD; wait $TD 2>/dev/null || true
pkill -f "$work/attacks.conf"

cp mosquitto-ward.pcap mosquitto-attacks.pcap "$out/"
echo "wrote $out/mosquitto-ward.pcap $out/mosquitto-attacks.pcap ($(mosquitto -h 2>&1 | head -1))"

package detect

// Entry is the fixed part of a finding: what it means, the controls it maps
// to and the defence. Detectors add the evidence and the time span.
type Entry struct {
	ID          string
	Category    string // attack, posture, behaviour
	Severity    Severity
	Title       string
	Explanation string
	Controls    Controls
	Defence     Defence
}

// Controls cited below: HIPAA 45 CFR 164.312 (a)(1) access control, (b)
// audit controls, (c)(1) integrity, (d) person or entity authentication,
// (e)(1) transmission security; IEC 62443-3-3 foundational requirements FR1
// to FR7; the FDA premarket cybersecurity control categories.
var catalogue = map[string]Entry{
	"attack.bruteforce": {
		Category: "attack", Severity: High,
		Title:       "Password guessing against the broker",
		Explanation: "A host sent many CONNECT packets that the broker refused as not authorised or with a bad user name or password, trying different credentials or retrying faster than any device reconnects. This is how an intruder finds a device's password; once found, it can read patient data and send commands as that device.",
		Controls: Controls{HIPAA: []string{"164.312(d) person or entity authentication", "164.312(b) audit controls"},
			IEC62443: []string{"FR1 identification and authentication control (SR 1.11 unsuccessful login attempts)", "FR6 timely response to events"},
			FDA:      []string{"authentication", "event detection and logging"}},
		Defence: Defence{Framework: "certificate authentication and monitoring",
			Change:    "Authenticate devices with certificates instead of passwords, and lock out sources that fail repeatedly (Mosquitto has no lockout: put the iomtguard gateway in front of it).",
			Gateway:   "devices:                      # identities from the site CA; the client ID must equal it\n  bed1-pump: {publish: [\"1/pump\"]}\nlimits:\n  auth_failures_before_ban: 5\n  ban: 15m",
			Mosquitto: "allow_anonymous false\nrequire_certificate true\nuse_identity_as_username true\ncafile /etc/mosquitto/ca.pem"},
	},
	"attack.connect-flood": {
		Category: "attack", Severity: High,
		Title:       "Connection storm against the broker",
		Explanation: "Clients opened and closed MQTT sessions far faster than devices do (EMQX calls a client that connects 15 times a minute flapping). A storm of short sessions uses up the broker's connection handling, and legitimate monitors can be refused or delayed.",
		Controls: Controls{HIPAA: []string{"164.312(b) audit controls"},
			IEC62443: []string{"FR7 resource availability (SR 7.1 denial of service protection)", "FR6 timely response to events"},
			FDA:      []string{"resiliency and recovery", "event detection and logging"}},
		Defence: Defence{Framework: "monitoring",
			Change:  "Limit connection rates per client ID and per source address and ban clients that flap (EMQX: 15 connects a minute, 5 minute ban).",
			Gateway: "limits:\n  connects_per_minute_per_identity: 15   # EMQX's flapping rule\n  connects_per_minute_per_ip: 30\n  ban: 5m",
			Mosquitto: "max_connections 500\n# Mosquitto has no per-client connect rate limit: use the iomtguard gateway or a firewall rate limit\n" +
				"# iptables -A INPUT -p tcp --dport 1883 --syn -m hashlimit --hashlimit-above 15/min --hashlimit-mode srcip --hashlimit-name mqtt -j DROP"},
	},
	"attack.publish-flood": {
		Category: "attack", Severity: High,
		Title:       "Publish flood",
		Explanation: "A client published messages at a rate no medical device needs. A flood fills the broker's queues and the subscribers' links, so that real alarms and readings arrive late or are dropped.",
		Controls: Controls{HIPAA: []string{"164.312(b) audit controls", "164.312(c)(1) integrity"},
			IEC62443: []string{"FR7 resource availability (SR 7.1 denial of service protection)", "FR3 system integrity"},
			FDA:      []string{"resiliency and recovery", "event detection and logging"}},
		Defence: Defence{Framework: "monitoring and segmentation",
			Change:    "Rate-limit publishes per client and restrict each device to its own topics so that a flood cannot reach other devices' subscribers.",
			Gateway:   "limits:\n  publishes_per_second: 50   # MQTT 5 clients over it get 0x97\n  bytes_per_second: 1048576\ndevices:\n  bed1-ecg: {publish: [\"1/ecg\"]}",
			Mosquitto: "max_inflight_messages 20\nmax_queued_messages 1000\nmessage_size_limit 65536\n# Mosquitto has no publish rate limit: use the iomtguard gateway"},
	},
	"attack.slow-dos": {
		Category: "attack", Severity: High,
		Title:       "Slow denial of service (idle connections held open)",
		Explanation: "One source holds many MQTT connections open without using them, with very long keep-alive intervals (the SlowITe attack). Each idle connection takes one of the broker's connection slots; when they run out, devices cannot reconnect.",
		Controls: Controls{HIPAA: []string{"164.312(b) audit controls"},
			IEC62443: []string{"FR7 resource availability (SR 7.1 denial of service protection)"},
			FDA:      []string{"resiliency and recovery"}},
		Defence: Defence{Framework: "monitoring",
			Change:    "Cap the keep-alive a client may ask for, the connections per source address and the time allowed to send CONNECT.",
			Gateway:   "limits:\n  connections_per_ip: 20\n  handshake_timeout: 10s",
			Mosquitto: "max_keepalive 300\nmax_connections 500"},
	},
	"attack.malformed": {
		Category: "attack", Severity: High,
		Title:       "Malformed MQTT (fuzzing)",
		Explanation: "A host sent MQTT that breaks the protocol's rules or probes its edges: invalid flags or lengths, packets before CONNECT, reserved or path-like topic names, oversized client IDs, and connections aborted with TCP resets. This is how attackers look for parser bugs that crash a broker or a device.",
		Controls: Controls{HIPAA: []string{"164.312(c)(1) integrity", "164.312(b) audit controls"},
			IEC62443: []string{"FR3 system integrity (SR 3.5 input validation)", "FR6 timely response to events"},
			FDA:      []string{"code, data and execution integrity", "event detection and logging"}},
		Defence: Defence{Framework: "monitoring and segmentation",
			Change:    "Reject malformed packets at a strict gateway and ban their source; keep the broker and device firmware patched.",
			Gateway:   "limits:\n  max_packet_size: 65536   # malformed or oversized packets close the connection\n  auth_failures_before_ban: 5",
			Mosquitto: "# keep Mosquitto current (apt-get upgrade mosquitto); it closes connections on malformed packets but does not ban the source"},
	},
	"attack.syn-flood": {
		Category: "attack", Severity: High,
		Title:       "TCP SYN flood",
		Explanation: "The broker received a burst of TCP connection requests that were never completed, typically from forged addresses. Half-open connections fill the broker's backlog so that real devices cannot connect.",
		Controls: Controls{HIPAA: []string{"164.312(b) audit controls"},
			IEC62443: []string{"FR7 resource availability (SR 7.1 denial of service protection)", "FR5 restricted data flow"},
			FDA:      []string{"resiliency and recovery"}},
		Defence: Defence{Framework: "segmentation",
			Change:    "Keep the broker unreachable from networks that do not need it, enable SYN cookies on its host and rate-limit SYNs at the firewall.",
			Gateway:   "# at the host: sysctl -w net.ipv4.tcp_syncookies=1\n# iomtguard gateway --listen 10.5.126.84:8883   (the device network only)\nlimits:\n  connects_per_minute_per_ip: 30",
			Mosquitto: "listener 8883 10.5.126.84\n# and at the host: sysctl -w net.ipv4.tcp_syncookies=1"},
	},
	"attack.scan": {
		Category: "attack", Severity: High,
		Title:       "Port or host scan",
		Explanation: "A host probed many ports or many hosts, most of which refused or did not answer. Scanning maps the network before an attack: which devices exist and which services they expose.",
		Controls: Controls{HIPAA: []string{"164.312(b) audit controls", "164.312(a)(1) access control"},
			IEC62443: []string{"FR5 restricted data flow (SR 5.1 network segmentation)", "FR6 timely response to events"},
			FDA:      []string{"event detection and logging", "authorization"}},
		Defence: Defence{Framework: "segmentation",
			Change:    "Put medical devices in their own zone that only the broker can reach, and alert on scanning sources.",
			Gateway:   "zones:\n  - {name: devices, hosts: [10.5.126.96/27]}\n  - {name: broker, hosts: [10.5.126.84]}\nflows:\n  - {from: devices, to: broker, ports: [8883]}",
			Mosquitto: "# segmentation is enforced by the network: firewall the device VLAN so that only the broker is reachable"},
	},
	"attack.wildcard-subscribe": {
		Category: "attack", Severity: High,
		Title:       "Subscription reaching other devices' data (every topic, $SYS, or topics outside the client's rights)",
		Explanation: "A client subscribed to every topic ('#'), to the broker's internal statistics ('$SYS/#'), or to topics that belong to other devices. One such subscription receives every patient reading on the broker.",
		Controls: Controls{HIPAA: []string{"164.312(a)(1) access control", "164.312(e)(1) transmission security"},
			IEC62443: []string{"FR2 use control (SR 2.1 authorization enforcement)", "FR4 data confidentiality"},
			FDA:      []string{"authorization", "confidentiality"}},
		Defence: Defence{Framework: "segmentation (topic access control)",
			Change:    "Give each client an explicit list of topics it may read; deny '#' and '$SYS/#' to everyone but an administrator.",
			Gateway:   "devices:                      # '#' and '$SYS/#' are refused unless listed\n  nurse-station: {subscribe: [\"+/patient\", \"+/pump\"]}\n  bed1-ecg: {publish: [\"1/ecg\"]}",
			Mosquitto: "acl_file /etc/mosquitto/acl\n# /etc/mosquitto/acl:\nuser nurse-station\ntopic read +/patient\npattern write %u/#"},
	},
	"attack.client-id-takeover": {
		Category: "attack", Severity: High,
		Title:       "Client ID takeover",
		Explanation: "The same MQTT client ID connected from two addresses while the first session was alive. The broker drops the older session when a second one claims its ID, so an intruder can knock a device off the network and speak in its name.",
		Controls: Controls{HIPAA: []string{"164.312(d) person or entity authentication"},
			IEC62443: []string{"FR1 identification and authentication control (SR 1.2 device identification and authentication)"},
			FDA:      []string{"authentication"}},
		Defence: Defence{Framework: "certificate authentication",
			Change:    "Bind each client ID to a device certificate, so that only the holder of that certificate can use the ID.",
			Gateway:   "# iomtguard gateway --client-id identity   (the default: the client ID must be the certificate's name)\ndevices:\n  bed1-ecg: {publish: [\"1/ecg\"]}",
			Mosquitto: "require_certificate true\nuse_identity_as_username true\n# and in the ACL file, pattern write %u/#"},
	},
	"posture.cleartext-mqtt": {
		Category: "posture", Severity: High,
		Title:       "MQTT in cleartext",
		Explanation: "MQTT sessions ran without TLS, so anyone on the network path can read every reading and command, and change them in transit.",
		Controls: Controls{HIPAA: []string{"164.312(e)(1) transmission security", "164.312(c)(1) integrity"},
			IEC62443: []string{"FR4 data confidentiality (SR 4.1 information confidentiality)", "FR3 system integrity (SR 3.1 communication integrity)"},
			FDA:      []string{"cryptography", "confidentiality"}},
		Defence: Defence{Framework: "encryption",
			Change:    "Move MQTT to TLS on port 8883 and close 1883; encrypt clinical payloads end to end as well (iomtguard seal).",
			Gateway:   "# iomtguard gateway --pki ca --policy ward.yaml --listen :8883   (TLS only, client certificates required)",
			Mosquitto: "listener 8883\ncafile /etc/mosquitto/ca.pem\ncertfile /etc/mosquitto/broker.pem\nkeyfile /etc/mosquitto/broker.key\ntls_version tlsv1.2"},
	},
	"posture.cleartext-credentials": {
		Category: "posture", Severity: High,
		Title:       "Passwords sent in cleartext",
		Explanation: "Clients sent user names and passwords in CONNECT packets without TLS. Anyone who can see the traffic has these credentials.",
		Controls: Controls{HIPAA: []string{"164.312(d) person or entity authentication", "164.312(e)(1) transmission security"},
			IEC62443: []string{"FR1 identification and authentication control (SR 1.5 authenticator management)", "FR4 data confidentiality"},
			FDA:      []string{"authentication", "cryptography"}},
		Defence: Defence{Framework: "encryption and certificate authentication",
			Change:    "Change the exposed passwords, move to TLS and replace passwords with device certificates.",
			Gateway:   "# iomtguard gateway --pki ca --policy ward.yaml   (TLS only; the certificate is the credential,\n#   a password on top with --passwords, stored hashed)",
			Mosquitto: "listener 8883\nrequire_certificate true\nuse_identity_as_username true\npassword_file /etc/mosquitto/passwd   # only if passwords stay, and only over TLS"},
	},
	"posture.anonymous-access": {
		Category: "posture", Severity: High,
		Title:       "Anonymous access to the broker",
		Explanation: "The broker accepted sessions that presented no user name and no certificate. Anyone who reaches it can publish commands or read patient data.",
		Controls: Controls{HIPAA: []string{"164.312(a)(1) access control", "164.312(d) person or entity authentication"},
			IEC62443: []string{"FR1 identification and authentication control", "FR2 use control"},
			FDA:      []string{"authentication", "authorization"}},
		Defence: Defence{Framework: "certificate authentication",
			Change:    "Refuse anonymous sessions and authenticate every device.",
			Gateway:   "devices:                      # only listed identities, with certificates from the site CA, connect\n  bed1-ecg: {publish: [\"1/ecg\"]}",
			Mosquitto: "allow_anonymous false\nrequire_certificate true"},
	},
	"posture.retained-sensitive": {
		Category: "posture", Severity: High,
		Title:       "Patient data kept as retained messages",
		Explanation: "Messages on clinical topics, or carrying patient identifiers, were published with the retain flag. The broker stores them and hands them to any client that subscribes later, long after they were sent.",
		Controls: Controls{HIPAA: []string{"164.312(a)(1) access control", "164.312(e)(1) transmission security"},
			IEC62443: []string{"FR4 data confidentiality", "FR2 use control"},
			FDA:      []string{"confidentiality"}},
		Defence: Defence{Framework: "encryption and segmentation",
			Change:    "Do not retain clinical messages; clear the stored ones (publish an empty retained message to each topic) and encrypt payloads.",
			Gateway:   "no_retain: [\"+/patient\", \"+/ecg\"]",
			Mosquitto: "retain_available false\n# clear one topic: mosquitto_pub -t 1/patient -r -n"},
	},
	"posture.phi-in-payload": {
		Category: "posture", Severity: Critical,
		Title:       "Patient identifiers in cleartext payloads",
		Explanation: "Payloads sent without TLS contain patient identifiers such as a medical record number, a name or a date of birth. This is a disclosure of protected health information to anyone on the network path.",
		Controls: Controls{HIPAA: []string{"164.312(e)(1) transmission security", "164.312(a)(1) access control"},
			IEC62443: []string{"FR4 data confidentiality (SR 4.1 information confidentiality)"},
			FDA:      []string{"confidentiality", "cryptography"}},
		Defence: Defence{Framework: "encryption",
			Change:    "Encrypt payloads end to end (iomtguard seal: AES-256-GCM or hybrid post-quantum envelopes) and move MQTT to TLS; send pseudonymous identifiers instead of names.",
			Gateway:   "sealed_topics: [\"+/patient\"]   # only iomtguard seal envelopes sealed for the topic pass",
			Mosquitto: "listener 8883\ntls_version tlsv1.2\n# payload encryption is done by the devices: iomtguard seal"},
	},
	"posture.unknown-peer": {
		Category: "posture", Severity: Medium,
		Title:       "Hosts or clients outside the inventory",
		Explanation: "Traffic came from addresses or MQTT client IDs that the site's inventory does not list. An unlisted peer is either an undocumented device or an intruder.",
		Controls: Controls{HIPAA: []string{"164.312(a)(1) access control", "164.312(b) audit controls"},
			IEC62443: []string{"FR1 identification and authentication control", "FR5 restricted data flow"},
			FDA:      []string{"authentication", "event detection and logging"}},
		Defence: Defence{Framework: "certificate authentication and segmentation",
			Change:    "Identify each unknown peer; add legitimate devices to the inventory with a certificate, block the rest.",
			Gateway:   "devices:                      # every other identity is refused\n  bed1-ecg: {publish: [\"1/ecg\"]}",
			Mosquitto: "require_certificate true"},
	},
	"posture.segmentation-violation": {
		Category: "posture", Severity: High,
		Title:       "Traffic between zones that the policy does not allow",
		Explanation: "Connections crossed from one network zone to another where the site's policy allows no such flow, so the segmentation that protects the devices is not enforced.",
		Controls: Controls{HIPAA: []string{"164.312(a)(1) access control"},
			IEC62443: []string{"FR5 restricted data flow (SR 5.1 network segmentation, SR 5.2 zone boundary protection)"},
			FDA:      []string{"authorization"}},
		Defence: Defence{Framework: "segmentation",
			Change:    "Enforce the zone rules at the firewall between the zones and list each allowed flow explicitly.",
			Gateway:   "zones:\n  - {name: devices, hosts: [10.5.126.96/27]}\n  - {name: broker, hosts: [10.5.126.84]}\nflows:\n  - {from: devices, to: broker, ports: [8883]}",
			Mosquitto: "# enforced by the network: firewall rules between the VLANs"},
	},
	"posture.weak-tls": {
		Category: "posture", Severity: Medium,
		Title:       "Weak TLS",
		Explanation: "TLS sessions used a version below 1.2, a weak cipher suite, or ran without client certificates where the site requires them.",
		Controls: Controls{HIPAA: []string{"164.312(e)(1) transmission security", "164.312(d) person or entity authentication"},
			IEC62443: []string{"FR4 data confidentiality (SR 4.3 use of cryptography)", "FR1 identification and authentication control"},
			FDA:      []string{"cryptography", "authentication"}},
		Defence: Defence{Framework: "encryption and certificate authentication",
			Change:    "Allow TLS 1.2 or later with AEAD suites only, and require client certificates.",
			Gateway:   "# iomtguard gateway --min-tls 1.3   (1.2 minimum by default; client certificates always required)",
			Mosquitto: "tls_version tlsv1.2\nciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384\nrequire_certificate true"},
	},
	"posture.legacy-protocol": {
		Category: "posture", Severity: Low,
		Title:       "Legacy MQTT 3.1",
		Explanation: "Clients spoke MQTT 3.1 (protocol name MQIsdp), a 2010 version superseded by 3.1.1 and 5.0. Devices this old rarely receive security updates.",
		Controls: Controls{HIPAA: []string{"164.312(c)(1) integrity"},
			IEC62443: []string{"FR3 system integrity"},
			FDA:      []string{"updatability and patchability"}},
		Defence: Defence{Framework: "monitoring",
			Change:    "Update the devices' MQTT stacks to 3.1.1 or 5.0, or plan their replacement.",
			Mosquitto: "# neither Mosquitto nor the iomtguard gateway refuses 3.1 alone: replace the devices"},
	},
	"anomaly.traffic": {
		Category: "behaviour", Severity: Medium,
		Title:       "Unusual traffic volume",
		Explanation: "The number of packets per interval left the range the traffic model predicts (outside its 99.9 % one-step interval). Sudden jumps come with floods, scans and mass reconnections; drops come with outages.",
		Controls: Controls{HIPAA: []string{"164.312(b) audit controls"},
			IEC62443: []string{"FR6 timely response to events (SR 6.2 continuous monitoring)"},
			FDA:      []string{"event detection and logging"}},
		Defence: Defence{Framework: "monitoring",
			Change:  "Look at the traffic in the flagged intervals (the report lists them) and keep monitoring continuously.",
			Gateway: "# iomtguard gateway --metrics :9108   (Prometheus /metrics; the detectors watch its traffic)"},
	},
	"anomaly.device-behaviour": {
		Category: "behaviour", Severity: Medium,
		Title:       "A device behaved unlike itself",
		Explanation: "A device's minute of traffic scored above the learned baseline's threshold: it published to topics, at a rate, with sizes or from addresses unlike its own learned normal (iomtguard baseline learn). It is the first sign of a compromised, misconfigured or cloned device, which no fixed rule describes.",
		Controls: Controls{HIPAA: []string{"164.312(b) audit controls", "164.312(c)(1) integrity"},
			IEC62443: []string{"FR6 timely response to events (SR 6.2 continuous monitoring)", "FR3 system integrity"},
			FDA:      []string{"event detection and logging", "code, data and execution integrity"}},
		Defence: Defence{Framework: "monitoring",
			Change:  "Check the device named: its firmware, its configuration and who can reach it; if the change is legitimate (a new topic, a new firmware), learn the baseline again.",
			Gateway: "# the iomtguard gateway's per-identity topic rights stop a device publishing outside its own topics"},
	},
	"anomaly.outlier": {
		Category: "behaviour", Severity: Low,
		Title:       "Rare packets far from the normal traffic",
		Explanation: "A few frames had sizes far from every cluster of normal traffic (K-means outliers). They can be probes, misconfigured devices or exfiltration.",
		Controls: Controls{HIPAA: []string{"164.312(b) audit controls"},
			IEC62443: []string{"FR6 timely response to events"},
			FDA:      []string{"event detection and logging"}},
		Defence: Defence{Framework: "monitoring",
			Change: "Inspect the listed frames and the hosts that sent them."},
	},
}

// The cross-site findings (GroupRegistry): a hub's, from its sensors' facts.
func init() {
	catalogue["attack.cloned-identity"] = Entry{
		Category: "attack", Severity: Critical,
		Title:       "One device identity active on two wards at once",
		Explanation: "The same MQTT client ID sent traffic to the brokers of two wards (or two sites) in the same minutes. A device is on one ward at a time: two live copies of one identity mean its certificate, password or firmware was copied, and the copy can read patient data and send commands as the real device. No single ward can see this; the hub compares them.",
		Controls: Controls{HIPAA: []string{"164.312(d) person or entity authentication", "164.312(a)(1) access control", "164.312(b) audit controls"},
			IEC62443: []string{"FR1 identification and authentication control (SR 1.2 software process and device identification)", "FR6 timely response to events"},
			FDA:      []string{"authentication", "cryptography (key protection)", "event detection and logging"}},
		Defence: Defence{Framework: "certificate authentication and monitoring",
			Change:    "Revoke the identity's certificate (iomtguard pki revoke) and issue the real device a new one; bind each identity to its ward's addresses so that a copy elsewhere is refused.",
			Gateway:   "devices:                      # one certificate per device; a revoked one is refused at once\n  bed1-ecg: {publish: [\"1/ecg\"]}\ninventory:\n  hosts: [10.5.126.0/24]        # the ward's devices only",
			Mosquitto: "require_certificate true\nuse_identity_as_username true\ncrlfile /etc/mosquitto/ca.crl"},
	}
	catalogue["attack.distributed-bruteforce"] = Entry{
		Category: "attack", Severity: High,
		Title:       "Password guessing spread over several wards",
		Explanation: "CONNECTs refused for bad credentials at the brokers of several wards add up to a guessing attack although each broker saw too few to call it one: an intruder spreading its guesses to stay under every single ward's threshold. The hub sums them.",
		Controls: Controls{HIPAA: []string{"164.312(d) person or entity authentication", "164.312(b) audit controls"},
			IEC62443: []string{"FR1 identification and authentication control (SR 1.11 unsuccessful login attempts)", "FR6 timely response to events"},
			FDA:      []string{"authentication", "event detection and logging"}},
		Defence: Defence{Framework: "certificate authentication and monitoring",
			Change:    "Authenticate devices with certificates instead of passwords on every ward, and share bans between the wards' gateways (a gateway cluster over NATS applies a ban at all of them).",
			Gateway:   "limits:\n  auth_failures_before_ban: 5\n  ban: 15m",
			Mosquitto: "allow_anonymous false\nrequire_certificate true\nuse_identity_as_username true"},
	}
}

// IDs lists the catalogue's finding IDs in a stable order.
func IDs() []string {
	order := []string{"attack.bruteforce", "attack.connect-flood", "attack.publish-flood", "attack.slow-dos", "attack.malformed",
		"attack.syn-flood", "attack.scan", "attack.wildcard-subscribe", "attack.client-id-takeover",
		"posture.cleartext-mqtt", "posture.cleartext-credentials", "posture.anonymous-access", "posture.retained-sensitive",
		"posture.phi-in-payload", "posture.unknown-peer", "posture.segmentation-violation", "posture.weak-tls",
		"posture.legacy-protocol", "anomaly.traffic", "anomaly.outlier"}
	return order
}

// Lookup returns the catalogue entry of a finding ID.
func Lookup(id string) (Entry, bool) {
	e, ok := catalogue[id]
	e.ID = id
	return e, ok
}

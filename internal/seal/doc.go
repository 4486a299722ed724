// Package seal encrypts MQTT payloads end to end: from the sensor to the
// clinician, through brokers that may be compromised or misconfigured.
// Broker TLS protects one hop; a sealed payload stays sealed on the broker,
// in retained messages and in captures.
//
// # Suites
//
//   - aes256gcm: one shared 256-bit key per device group, AES-256-GCM with a
//     random 96-bit nonce per message. Smallest and fastest; every holder of
//     the key can both seal and open, so a stolen device key opens the group.
//   - x25519: HPKE base mode (RFC 9180) with DHKEM(X25519, HKDF-SHA256),
//     HKDF-SHA256 and AES-256-GCM. Devices hold only the recipient's public
//     key: a stolen device cannot read its neighbours' readings.
//   - mlkem768x25519: HPKE with the hybrid post-quantum KEM ML-KEM-768 +
//     X25519 (draft-ietf-hpke-pq), HKDF-SHA256, AES-256-GCM: confidentiality
//     holds unless both X25519 and ML-KEM-768 are broken, which protects
//     readings recorded today against a quantum computer later ("harvest now,
//     decrypt later"). Its encapsulated key is 1,120 bytes.
//
// # Envelope (version 1)
//
// All integers big-endian.
//
//	offset  size  field
//	0       2     magic "IG"
//	2       1     version (1)
//	3       1     suite (1 aes256gcm, 2 x25519, 3 mlkem768x25519)
//	4       1     flags: 0x01 signed, 0x02 session message, 0x04 carries the
//	              session's encapsulated key
//	5       8     key ID: SHA-256 of the recipient key (see KeyID), first 8 bytes
//	13      4     topic tag: SHA-256 of the MQTT topic, first 4 bytes
//	17      8     sender ID: random per Sealer, or the signing key's ID
//	25      8     sequence number of the sender (from 1)
//	33      8     timestamp, Unix milliseconds
//	41      8     session ID (session messages only)
//	        2+n   encapsulated key, length-prefixed (HPKE one-shot messages and
//	              session starts)
//	        12    nonce (aes256gcm only)
//	        n     ciphertext with its 16-byte tag
//	        64    Ed25519 signature (signed envelopes only)
//	        4     CRC-32C of everything before it
//
// The additional authenticated data is "iomtguard-seal-v1", the topic
// (length-prefixed) and every header byte before the ciphertext, so that a
// reading moved to another topic, or with any header field changed, fails.
// The signature covers the same context and the whole envelope before it.
//
// # Sessions
//
// Small, frequent readings should not pay an HPKE encapsulation each (1,120
// bytes with ML-KEM). A Sealer with Session set opens one HPKE context per
// session, exports a 256-bit session key from it (RFC 9180 section 5.3),
// sends the encapsulated key with the first message and then seals each
// message with AES-256-GCM under the session key, the nonce being the
// sequence number: messages may be lost or reordered, as MQTT QoS 0 allows.
// A session ends after RekeyEvery messages, so that a subscriber that
// missed a session's first message waits at most that long.
//
// # Errors
//
// Open refuses an envelope with one of ErrMalformed (not an envelope),
// ErrTampered (any changed byte, or a bad signature), ErrWrongKey (sealed for
// another key), ErrWrongTopic (sealed for another topic), ErrExpired (older
// than MaxAge, or too far in the future), ErrReplayed (its sender's sequence
// number was seen, or is behind the replay window), ErrUnknownSession and
// ErrUnknownSender.
package seal

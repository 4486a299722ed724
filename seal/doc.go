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
// An envelope is a 41-byte clear header (magic "IG", version, suite, flags,
// recipient key ID, topic tag, sender ID, sequence number, time), the HPKE
// encapsulated key or the AES-GCM nonce where the mode needs one, the
// ciphertext, an optional Ed25519 signature and a CRC-32C. The additional
// authenticated data binds the topic and every header byte. The format is
// specified byte by byte in SPEC.md, beside this file, with test vectors in
// testdata/vectors.json that an implementation in another language can check
// itself against (scripts/seal_vectors.py is one, in Python).
//
// # Stability
//
// The envelope format is versioned (a reader refuses versions it does not
// know) and version 1 does not change. The Go API follows semantic import
// versioning: what is exported here stays, with the same meaning.
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

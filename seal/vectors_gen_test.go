package seal

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"hash/crc32"
	"os"
	"testing"
	"testing/cryptotest"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// The published test vectors (testdata/vectors.json, specified in SPEC.md).
// Each case is a key, a topic, a clock and a list of steps that one opener
// takes in order: an envelope and either the plaintext it opens to or the
// error it must be refused with. Intermediate values (key ID, topic tag,
// additional data, session key) are given for the first envelope of each
// case, so that an implementation can find where it departs.
type vectorFile struct {
	Format      string       `json:"format"`
	GeneratedBy string       `json:"generated_by"`
	Errors      []string     `json:"errors"`
	Cases       []vectorCase `json:"cases"`
}

type vectorCase struct {
	Name             string       `json:"name"`
	Suite            string       `json:"suite"`
	Key              string       `json:"key"`                  // opening key: the AES key, or the HPKE private key (RFC 9180 SerializePrivateKey)
	PublicKey        string       `json:"public_key,omitempty"` // HPKE suites: the key sealers use
	KeyID            string       `json:"key_id"`
	Topic            string       `json:"topic"`
	NowMs            int64        `json:"now_ms"`
	MaxAgeMs         int64        `json:"max_age_ms"`
	MaxSkewMs        int64        `json:"max_skew_ms"`
	VerifyKeys       []string     `json:"verify_keys,omitempty"`
	RequireSignature bool         `json:"require_signature,omitempty"`
	SigningSeed      string       `json:"signing_seed,omitempty"` // to reproduce signatures (Ed25519 is deterministic)
	Steps            []vectorStep `json:"steps"`
}

type vectorStep struct {
	Note      string `json:"note"`
	Envelope  string `json:"envelope"`
	Topic     string `json:"topic,omitempty"`  // opened for this topic instead of the case's
	NowMs     int64  `json:"now_ms,omitempty"` // opened at this time instead of the case's
	Plaintext string `json:"plaintext,omitempty"`
	Error     string `json:"error,omitempty"`
	// Intermediate values, where they help.
	TopicTag   string `json:"topic_tag,omitempty"`
	AAD        string `json:"aad,omitempty"`
	Nonce      string `json:"nonce,omitempty"`
	SessionKey string `json:"session_key,omitempty"`
	Signed     string `json:"signed_message,omitempty"` // the bytes the Ed25519 signature covers
}

// ErrorNames maps the names used in the vectors to the package's errors.
var errorNames = map[string]error{
	"malformed": ErrMalformed, "tampered": ErrTampered, "wrong_key": ErrWrongKey, "wrong_topic": ErrWrongTopic,
	"expired": ErrExpired, "replayed": ErrReplayed, "unknown_session": ErrUnknownSession, "unknown_sender": ErrUnknownSender,
}

const vectorsPath = "testdata/vectors.json"

// vectorTime is the clock of every case: 2026-01-05 08:00:00 UTC.
var vectorTime = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

// recrc rewrites an envelope's checksum after a deliberate change, so that
// the change reaches the check it is aimed at.
func recrc(env []byte) []byte {
	b := append([]byte(nil), env...)
	binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

// details fills a step's intermediate values from the envelope.
func details(st *vectorStep, k *Key, topic string, env []byte) {
	h, err := Inspect(env)
	if err != nil {
		panic(err)
	}
	tt := topicTag(topic)
	st.TopicTag = hex.EncodeToString(tt[:])
	body := env[:len(env)-crcLen]
	if h.Signed {
		st.Signed = hex.EncodeToString(sigInput(topic, body[:len(body)-sigLen]))
		body = body[:len(body)-sigLen]
	}
	p := headerLen
	if h.Session {
		p += 8
	}
	var enc []byte
	if h.Suite != AES256GCM && (!h.Session || env[4]&flagEnc != 0) {
		n := int(binary.BigEndian.Uint16(body[p:]))
		enc = body[p+2 : p+2+n]
		p += 2 + n
	}
	switch {
	case h.Suite == AES256GCM:
		st.Nonce = hex.EncodeToString(body[p : p+12])
		p += 12
	case h.Session:
		n := make([]byte, 12)
		binary.BigEndian.PutUint64(n[4:], h.Seq)
		st.Nonce = hex.EncodeToString(n)
	}
	st.AAD = hex.EncodeToString(aad(nil, topic, body[:p]))
	if h.Session && enc != nil {
		sk, err := hpkeExport(k.priv, hpkeKDF, hpkeAEAD, enc, hpkeInfo(h.Suite), sessionExport, 32)
		if err != nil {
			panic(err)
		}
		st.SessionKey = hex.EncodeToString(sk)
	}
}

// buildVectors makes every case. Randomness (keys, nonces, HPKE
// encapsulations, sender and session IDs) comes from crypto/rand, made
// deterministic by the caller.
func buildVectors(t *testing.T) vectorFile {
	now := func() time.Time { return vectorTime }
	ms := vectorTime.UnixMilli()
	vf := vectorFile{
		Format:      "iomtguard sealed envelope, version 1: see seal/SPEC.md",
		GeneratedBy: "go test ./seal -run TestVectors -update (crypto/rand made deterministic with testing/cryptotest)",
	}
	for n := range errorNames {
		vf.Errors = append(vf.Errors, n)
	}
	sortStrings(vf.Errors)
	newCase := func(name string, k *Key, topic string) vectorCase {
		c := vectorCase{Name: name, Suite: k.Suite.String(), KeyID: hex.EncodeToString(k.id[:]), Topic: topic,
			NowMs: ms, MaxAgeMs: (10 * time.Minute).Milliseconds(), MaxSkewMs: (2 * time.Minute).Milliseconds()}
		if k.Suite == AES256GCM {
			c.Key = hex.EncodeToString(k.sym)
		} else {
			b, err := k.priv.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			c.Key, c.PublicKey = hex.EncodeToString(b), hex.EncodeToString(k.Public().pub.Bytes())
		}
		return c
	}
	ok := func(c *vectorCase, k *Key, note string, env, pt []byte, detail bool) {
		st := vectorStep{Note: note, Envelope: hex.EncodeToString(env), Plaintext: hex.EncodeToString(pt)}
		if pt == nil {
			st.Plaintext = ""
		}
		if detail {
			details(&st, k, c.Topic, env)
		}
		c.Steps = append(c.Steps, st)
	}
	refuse := func(c *vectorCase, note string, env []byte, err string) *vectorStep {
		c.Steps = append(c.Steps, vectorStep{Note: note, Envelope: hex.EncodeToString(env), Error: err})
		return &c.Steps[len(c.Steps)-1]
	}
	seal := func(s *Sealer, topic, pt string) []byte {
		env, err := s.Seal(topic, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	sealer := func(k *Key, opts Options) *Sealer {
		opts.Now = now
		var target any = k
		if k.Suite != AES256GCM {
			target = k.Public()
		}
		s, err := NewSealer(target, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// 1. aes256gcm, one-shot, and every refusal the framing and the clock make.
	{
		k := mustKey(t, AES256GCM)
		c := newCase("aes256gcm: one-shot messages and refusals", k, "ward3/bed1/spo2")
		s := sealer(k, Options{})
		e1 := seal(s, c.Topic, `{"spo2":97,"hr":72}`)
		ok(&c, k, "first message", e1, []byte(`{"spo2":97,"hr":72}`), true)
		refuse(&c, "the same envelope again", e1, "replayed")
		e2 := seal(s, c.Topic, "")
		ok(&c, k, "an empty payload", e2, []byte{}, true)
		e3 := seal(s, c.Topic, `{"spo2":96}`)
		bad := append([]byte(nil), e3...)
		bad[len(bad)-10] ^= 0x01
		refuse(&c, "one ciphertext bit flipped, checksum not updated", bad, "tampered")
		refuse(&c, "one ciphertext bit flipped, checksum updated", recrc(bad), "tampered")
		hdr := append([]byte(nil), e3...)
		hdr[30] ^= 0x01 // the sequence number, authenticated as additional data
		refuse(&c, "sequence number changed, checksum updated", recrc(hdr), "tampered")
		st := refuse(&c, "opened for another topic", e3, "wrong_topic")
		st.Topic = "ward3/bed2/spo2"
		v2 := append([]byte(nil), e3...)
		v2[2] = 2
		refuse(&c, "version 2, checksum updated", recrc(v2), "malformed")
		refuse(&c, "cut to 60 bytes", e3[:60], "malformed")
		refuse(&c, "not an envelope", []byte(`{"spo2":97,"hr":72} and some more bytes to be long enough`), "malformed")
		late := refuse(&c, "opened 11 minutes after it was sealed", e3, "expired")
		late.NowMs = ms + (11 * time.Minute).Milliseconds()
		ok(&c, k, "opened in time, after the refusals", e3, []byte(`{"spo2":96}`), false)
		other := mustKey(t, AES256GCM)
		refuse(&c, "sealed for another key", seal(sealer(other, Options{}), c.Topic, "x"), "wrong_key")
		vf.Cases = append(vf.Cases, c)
	}
	// 2 and 3. HPKE one-shot, both suites.
	for _, suite := range []Suite{X25519, MLKEM768X25519} {
		k := mustKey(t, suite)
		c := newCase(suite.String()+": one-shot messages", k, "icu/bed7/pump/rate")
		s := sealer(k, Options{})
		e1 := seal(s, c.Topic, "12.5 ml/h")
		ok(&c, k, "first message", e1, []byte("12.5 ml/h"), true)
		e2 := seal(s, c.Topic, "12.6 ml/h")
		e3 := seal(s, c.Topic, "12.7 ml/h")
		ok(&c, k, "third message before the second (reordered)", e3, []byte("12.7 ml/h"), false)
		ok(&c, k, "second message", e2, []byte("12.6 ml/h"), false)
		bad := append([]byte(nil), e2...)
		bad[headerLen+5] ^= 0x80 // inside the encapsulated key
		refuse(&c, "encapsulated key changed, checksum updated", recrc(bad), "tampered")
		refuse(&c, "second message again", e2, "replayed")
		vf.Cases = append(vf.Cases, c)
	}
	// 4 and 5. Sessions: the first message carries the encapsulated key,
	// the rest only a session ID; RekeyEvery 3 starts a new session at the
	// fourth; the second session's signed in case 5.
	for i, suite := range []Suite{X25519, MLKEM768X25519} {
		k := mustKey(t, suite)
		opts := Options{Session: true, RekeyEvery: 3}
		name := suite.String() + ": a session of three messages, then a new session"
		var c vectorCase
		if i == 1 {
			seed := bytes.Repeat([]byte{0x42}, 32)
			opts.Signer = ed25519.NewKeyFromSeed(seed)
			name = suite.String() + ": signed sessions"
			c = newCase(name, k, "icu/bed2/ecg")
			c.VerifyKeys = []string{hex.EncodeToString(opts.Signer.Public().(ed25519.PublicKey))}
			c.RequireSignature = true
			c.SigningSeed = hex.EncodeToString(seed)
		} else {
			c = newCase(name, k, "icu/bed2/ecg")
		}
		s := sealer(k, opts)
		var env [6][]byte
		for j := range env {
			env[j] = seal(s, c.Topic, string(rune('a'+j))+"-reading")
		}
		pt := func(j int) []byte { return []byte(string(rune('a'+j)) + "-reading") }
		refuse(&c, "second message of session 1 before its first: the session key is not known yet", env[1], "unknown_session")
		ok(&c, k, "first message of session 1 (carries the encapsulated key)", env[0], pt(0), true)
		ok(&c, k, "third message of session 1 (session ID only; nonce from the sequence number)", env[2], pt(2), true)
		ok(&c, k, "second message of session 1, late (a session message is opened in any order)", env[1], pt(1), false)
		ok(&c, k, "first message of session 2 (a new encapsulated key)", env[3], pt(3), true)
		bad := append([]byte(nil), env[4]...)
		bad[headerLen+2] ^= 0x01 // the session ID
		st := refuse(&c, "session ID changed, checksum updated", recrc(bad), "unknown_session")
		if opts.Signer != nil {
			st.Error = "tampered" // the signature covers the session ID
		}
		ok(&c, k, "second message of session 2", env[4], pt(4), false)
		refuse(&c, "second message of session 2 again", env[4], "replayed")
		if opts.Signer != nil {
			sig := append([]byte(nil), env[5]...)
			sig[len(sig)-crcLen-1] ^= 0x01
			refuse(&c, "signature changed, checksum updated", recrc(sig), "tampered")
		}
		ok(&c, k, "third message of session 2", env[5], pt(5), false)
		vf.Cases = append(vf.Cases, c)
	}
	// 6. Signatures on aes256gcm: required, from a known device only.
	{
		k := mustKey(t, AES256GCM)
		seed := bytes.Repeat([]byte{0x17}, 32)
		dev := ed25519.NewKeyFromSeed(seed)
		c := newCase("aes256gcm: signed by a known device, signature required", k, "ward3/bed1/ecg")
		c.VerifyKeys = []string{hex.EncodeToString(dev.Public().(ed25519.PublicKey))}
		c.RequireSignature, c.SigningSeed = true, hex.EncodeToString(seed)
		e1 := seal(sealer(k, Options{Signer: dev}), c.Topic, "72 bpm")
		ok(&c, k, "signed by the device", e1, []byte("72 bpm"), true)
		refuse(&c, "unsigned", seal(sealer(k, Options{}), c.Topic, "73 bpm"), "unknown_sender")
		stranger := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x99}, 32))
		refuse(&c, "signed by a device not in verify_keys", seal(sealer(k, Options{Signer: stranger}), c.Topic, "74 bpm"), "unknown_sender")
		vf.Cases = append(vf.Cases, c)
	}
	return vf
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestVectors: with -update it writes testdata/vectors.json (the same bytes
// every time: crypto/rand is made deterministic). Without, it checks that
// the committed file's intermediate values are what this package computes
// (the openings themselves are checked through the public API by
// TestPublishedVectors, and by a module outside this one).
func TestVectors(t *testing.T) {
	if *update {
		cryptotest.SetGlobalRandom(t, 2026)
		vf := buildVectors(t)
		b, err := json.MarshalIndent(vf, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d cases", vectorsPath, len(vf.Cases))
		return
	}
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(b, &vf); err != nil {
		t.Fatal(err)
	}
	for _, c := range vf.Cases {
		raw, _ := hex.DecodeString(c.Key)
		s, err := ParseSuite(c.Suite)
		if err != nil {
			t.Fatal(err)
		}
		var k *Key
		if s == AES256GCM {
			k, err = NewSymmetricKey(raw)
		} else {
			k, err = NewPrivateKey(s, raw)
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if hex.EncodeToString(k.id[:]) != c.KeyID {
			t.Errorf("%s: key ID %x, file %s", c.Name, k.id, c.KeyID)
		}
		for _, st := range c.Steps {
			if st.AAD == "" {
				continue
			}
			env, _ := hex.DecodeString(st.Envelope)
			var want vectorStep
			details(&want, k, c.Topic, env)
			if want.AAD != st.AAD || want.TopicTag != st.TopicTag || want.Nonce != st.Nonce || want.SessionKey != st.SessionKey || want.Signed != st.Signed {
				t.Errorf("%s, %s: intermediate values differ from the file's", c.Name, st.Note)
			}
		}
	}
}

package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"time"
)

var suites = []Suite{AES256GCM, X25519, MLKEM768X25519}

type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }

func mustKey(t testing.TB, s Suite) *Key {
	t.Helper()
	k, err := GenerateKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sealerFor returns a Sealer for key (the public key for HPKE suites).
func sealerFor(t testing.TB, k *Key, opts Options) *Sealer {
	t.Helper()
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

func TestRoundTrip(t *testing.T) {
	signer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	for _, s := range suites {
		for _, mode := range []string{"one-shot", "session", "signed", "signed session"} {
			if s == AES256GCM && (mode == "session" || mode == "signed session") {
				continue
			}
			t.Run(s.String()+" "+mode, func(t *testing.T) {
				k := mustKey(t, s)
				opts := Options{Session: mode == "session" || mode == "signed session", RekeyEvery: 5}
				oo := OpenOptions{}
				if mode == "signed" || mode == "signed session" {
					opts.Signer = signer
					oo.Verifiers = []ed25519.PublicKey{signer.Public().(ed25519.PublicKey)}
					oo.RequireSignature = true
				}
				sl := sealerFor(t, k, opts)
				op := NewOpener(k, oo)
				for i := 0; i < 12; i++ {
					pt := []byte(fmt.Sprintf(`{"spo2":%d}`, 90+i))
					if i == 3 {
						pt = nil // an empty payload
					}
					env, err := sl.Seal("ward3/bed1/spo2", pt)
					if err != nil {
						t.Fatal(err)
					}
					got, info, err := op.Open("ward3/bed1/spo2", env)
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if !bytes.Equal(got, pt) || info.Seq != uint64(i+1) || info.Suite != s || info.Signed != (opts.Signer != nil) {
						t.Fatalf("message %d: %q %+v", i, got, info)
					}
				}
			})
		}
	}
}

// TestRefusals: each kind of bad envelope has its own error, and Open
// returns no plaintext with it.
func TestRefusals(t *testing.T) {
	for _, s := range suites {
		for _, session := range []bool{false, true} {
			if s == AES256GCM && session {
				continue
			}
			t.Run(fmt.Sprintf("%s session=%v", s, session), func(t *testing.T) {
				clock := &fixedClock{time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
				k := mustKey(t, s)
				sl := sealerFor(t, k, Options{Session: session, Now: clock.now})
				env, err := sl.Seal("1/ecg", []byte("72 bpm"))
				if err != nil {
					t.Fatal(err)
				}
				open := func(key *Key, topic string, e []byte) error {
					pt, _, err := NewOpener(key, OpenOptions{Now: clock.now}).Open(topic, e)
					if err != nil && pt != nil {
						t.Errorf("plaintext returned with %v", err)
					}
					return err
				}
				if err := open(k, "1/ecg", env); err != nil {
					t.Fatal(err)
				}
				if err := open(mustKey(t, s), "1/ecg", env); !errors.Is(err, ErrWrongKey) {
					t.Errorf("wrong key: %v", err)
				}
				if err := open(k, "2/ecg", env); !errors.Is(err, ErrWrongTopic) {
					t.Errorf("wrong topic: %v", err)
				}
				// Every bit of the envelope, flipped.
				for i := 0; i < len(env)*8; i++ {
					bad := bytes.Clone(env)
					bad[i/8] ^= 1 << (i % 8)
					if err := open(k, "1/ecg", bad); !errors.Is(err, ErrTampered) {
						t.Fatalf("bit %d flipped: %v", i, err)
					}
				}
				for _, n := range []int{0, 5, len(env) - 1} {
					if err := open(k, "1/ecg", env[:n]); err == nil {
						t.Errorf("cut to %d bytes: opened", n)
					}
				}
				if err := open(k, "1/ecg", []byte(`{"hr":72}`)); !errors.Is(err, ErrMalformed) {
					t.Errorf("plaintext JSON: %v", err)
				}
				o := NewOpener(k, OpenOptions{Now: clock.now})
				if _, _, err := o.Open("1/ecg", env); err != nil {
					t.Fatal(err)
				}
				if _, _, err := o.Open("1/ecg", env); !errors.Is(err, ErrReplayed) {
					t.Errorf("replay: %v", err)
				}
				late := &fixedClock{clock.t.Add(11 * time.Minute)}
				if _, _, err := NewOpener(k, OpenOptions{Now: late.now}).Open("1/ecg", env); !errors.Is(err, ErrExpired) {
					t.Errorf("11 minutes later: %v", err)
				}
				early := &fixedClock{clock.t.Add(-3 * time.Minute)}
				if _, _, err := NewOpener(k, OpenOptions{Now: early.now}).Open("1/ecg", env); !errors.Is(err, ErrExpired) {
					t.Errorf("from the future: %v", err)
				}
				if _, _, err := NewOpener(k, OpenOptions{Now: late.now, MaxAge: -1}).Open("1/ecg", env); err != nil {
					t.Errorf("MaxAge disabled: %v", err)
				}
			})
		}
	}
}

func TestSessions(t *testing.T) {
	k := mustKey(t, MLKEM768X25519)
	sl := sealerFor(t, k, Options{Session: true, RekeyEvery: 4})
	var envs [][]byte
	for i := 0; i < 9; i++ {
		e, _ := sl.Seal("t", []byte{byte(i)})
		envs = append(envs, e)
	}
	// Only session starts carry the 1,120-byte encapsulated key.
	if len(envs[0]) < 1120 || len(envs[1]) > 100 || len(envs[4]) < 1120 {
		t.Errorf("sizes %d %d %d", len(envs[0]), len(envs[1]), len(envs[4]))
	}
	// A subscriber that missed the start of the first session.
	o := NewOpener(k, OpenOptions{})
	if _, _, err := o.Open("t", envs[1]); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("before the start: %v", err)
	}
	// Loss and reordering inside a session are fine.
	for _, i := range []int{4, 6, 5, 8} {
		if pt, _, err := o.Open("t", envs[i]); err != nil || pt[0] != byte(i) {
			t.Errorf("message %d: %v", i, err)
		}
	}
	if _, _, err := o.Open("t", envs[5]); !errors.Is(err, ErrReplayed) {
		t.Errorf("replay inside a session: %v", err)
	}
}

func TestSignatures(t *testing.T) {
	k := mustKey(t, X25519)
	dev := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	env, _ := sealerFor(t, k, Options{Signer: dev}).Seal("t", []byte("x"))
	unsigned, _ := sealerFor(t, k, Options{}).Seal("t", []byte("x"))
	if _, _, err := NewOpener(k, OpenOptions{Verifiers: []ed25519.PublicKey{other.Public().(ed25519.PublicKey)}}).Open("t", env); !errors.Is(err, ErrUnknownSender) {
		t.Errorf("unknown signer: %v", err)
	}
	if _, _, err := NewOpener(k, OpenOptions{RequireSignature: true}).Open("t", unsigned); !errors.Is(err, ErrUnknownSender) {
		t.Errorf("unsigned where required: %v", err)
	}
	_, info, err := NewOpener(k, OpenOptions{Verifiers: []ed25519.PublicKey{dev.Public().(ed25519.PublicKey)}}).Open("t", env)
	if err != nil || info.Sender != SignerID(dev.Public().(ed25519.PublicKey)) {
		t.Errorf("signed: %v %+v", err, info)
	}
}

func TestWindow(t *testing.T) {
	w := newWindow(64)
	for _, c := range []struct {
		seq  uint64
		want bool
	}{{1, true}, {1, false}, {3, true}, {2, true}, {2, false}, {100, true}, {36, false}, {37, true}, {37, false}, {0, false}, {1000, true}, {999, true}, {936, false}} {
		if got := w.check(c.seq); got != c.want {
			t.Errorf("check(%d) = %v", c.seq, got)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	for _, s := range suites {
		k := mustKey(t, s)
		b, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParsePEM(b)
		if err != nil {
			t.Fatal(err)
		}
		k2 := back.(*Key)
		if k2.ID() != k.ID() || k2.Suite != s {
			t.Errorf("%s: key file round trip", s)
		}
		if s != AES256GCM {
			pb, err := ParsePEM(k.Public().MarshalPEM())
			if err != nil || pb.(*PublicKey).ID() != k.ID() {
				t.Errorf("%s: public key file: %v", s, err)
			}
			// Sealing with the public key read back opens with the private key read back.
			env, _ := sealerFor(t, k, Options{}).Seal("t", []byte("x"))
			if _, _, err := NewOpener(k2, OpenOptions{}).Open("t", env); err != nil {
				t.Errorf("%s: %v", s, err)
			}
		}
	}
	_, pub, _ := ed25519.GenerateKey(rand.Reader)
	_ = pub
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	sk, vk := MarshalSigningKey(priv)
	a, err := ParsePEM(sk)
	if err != nil || !a.(ed25519.PrivateKey).Equal(priv) {
		t.Errorf("signing key: %v", err)
	}
	b, err := ParsePEM(vk)
	if err != nil || !b.(ed25519.PublicKey).Equal(priv.Public()) {
		t.Errorf("verify key: %v", err)
	}
	for _, bad := range []string{"", "hello", "-----BEGIN IOMTGUARD SEAL KEY-----\nSuite: rot13\n\nAAAA\n-----END IOMTGUARD SEAL KEY-----\n",
		"-----BEGIN IOMTGUARD SEAL KEY-----\nSuite: aes256gcm\n\nAAAA\n-----END IOMTGUARD SEAL KEY-----\n"} {
		if _, err := ParsePEM([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzOpen: opening arbitrary bytes never panics, and nothing but a sealed
// envelope opens.
func FuzzOpen(f *testing.F) {
	keys := map[Suite]*Key{}
	for _, s := range suites {
		k, _ := GenerateKey(s)
		keys[s] = k
		var target any = k
		if s != AES256GCM {
			target = k.Public()
		}
		for _, session := range []bool{false, true} {
			if s == AES256GCM && session {
				continue
			}
			sl, _ := NewSealer(target, Options{Session: session, Signer: ed25519.NewKeyFromSeed(make([]byte, 32))})
			e, _ := sl.Seal("t", []byte("reading"))
			f.Add(byte(s), e)
		}
	}
	f.Add(byte(1), []byte("IG\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, s byte, env []byte) {
		k := keys[Suite(s%3+1)]
		o := NewOpener(k, OpenOptions{MaxAge: -1, Verifiers: []ed25519.PublicKey{ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)}})
		try := func(e []byte) {
			pt, info, err := o.Open("t", e)
			if err == nil && info == nil {
				t.Fatal("opened without info")
			}
			if err != nil && pt != nil {
				t.Fatal("plaintext with an error")
			}
		}
		try(env)
		// The same bytes with a valid checksum, so that the fuzzer reaches
		// the parsing behind it.
		if len(env) >= crcLen {
			fixed := bytes.Clone(env)
			binary.BigEndian.PutUint32(fixed[len(fixed)-crcLen:], crc32.Checksum(fixed[:len(fixed)-crcLen], castagnoli))
			try(fixed)
		}
	})
}

func TestInspect(t *testing.T) {
	k := mustKey(t, X25519)
	env, _ := sealerFor(t, k, Options{Session: true}).Seal("icu/bed1/patient", []byte("MRN:1"))
	h, err := Inspect(env)
	if err != nil || h.Suite != X25519 || !h.Session || h.Seq != 1 || !h.ForTopic("icu/bed1/patient") || h.ForTopic("icu/bed2/patient") || h.KeyID != k.ID() {
		t.Errorf("%+v %v", h, err)
	}
	if _, err := Inspect([]byte(`{"mrn":"4100137"}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("plaintext: %v", err)
	}
	for _, i := range []int{0, 1, 30, len(env) - 1} {
		bad := bytes.Clone(env)
		bad[i] ^= 1
		if _, err := Inspect(bad); !errors.Is(err, ErrTampered) {
			t.Errorf("byte %d flipped: %v (Open and Inspect frame envelopes alike)", i, err)
		}
	}
}

package seal_test

// This file checks the published vectors (testdata/vectors.json) through
// the package's public API only. It is also the test a module outside this
// repository runs (TestExternalModule copies it there), which is what a
// device maker's build does.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/seal"
)

type publishedCase struct {
	Name             string   `json:"name"`
	Suite            string   `json:"suite"`
	Key              string   `json:"key"`
	KeyID            string   `json:"key_id"`
	Topic            string   `json:"topic"`
	NowMs            int64    `json:"now_ms"`
	MaxAgeMs         int64    `json:"max_age_ms"`
	MaxSkewMs        int64    `json:"max_skew_ms"`
	VerifyKeys       []string `json:"verify_keys"`
	RequireSignature bool     `json:"require_signature"`
	Steps            []struct {
		Note      string `json:"note"`
		Envelope  string `json:"envelope"`
		Topic     string `json:"topic"`
		NowMs     int64  `json:"now_ms"`
		Plaintext string `json:"plaintext"`
		Error     string `json:"error"`
	} `json:"steps"`
}

var publishedErrors = map[string]error{
	"malformed": seal.ErrMalformed, "tampered": seal.ErrTampered, "wrong_key": seal.ErrWrongKey, "wrong_topic": seal.ErrWrongTopic,
	"expired": seal.ErrExpired, "replayed": seal.ErrReplayed, "unknown_session": seal.ErrUnknownSession, "unknown_sender": seal.ErrUnknownSender,
}

func fromHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublishedVectors opens every step of every case with one opener per
// case, in order, and expects the plaintext or the named error.
func TestPublishedVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vf struct {
		Cases []publishedCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &vf); err != nil {
		t.Fatal(err)
	}
	if len(vf.Cases) < 6 {
		t.Fatalf("%d cases", len(vf.Cases))
	}
	steps := 0
	for _, c := range vf.Cases {
		t.Run(c.Name, func(t *testing.T) {
			suite, err := seal.ParseSuite(c.Suite)
			if err != nil {
				t.Fatal(err)
			}
			var key *seal.Key
			if suite == seal.AES256GCM {
				key, err = seal.NewSymmetricKey(fromHex(t, c.Key))
			} else {
				key, err = seal.NewPrivateKey(suite, fromHex(t, c.Key))
			}
			if err != nil {
				t.Fatal(err)
			}
			if id := key.ID(); hex.EncodeToString(id[:]) != c.KeyID {
				t.Fatalf("key ID %x, want %s", id, c.KeyID)
			}
			now := time.UnixMilli(c.NowMs)
			opts := seal.OpenOptions{MaxAge: time.Duration(c.MaxAgeMs) * time.Millisecond, MaxSkew: time.Duration(c.MaxSkewMs) * time.Millisecond,
				RequireSignature: c.RequireSignature, Now: func() time.Time { return now }}
			for _, v := range c.VerifyKeys {
				opts.Verifiers = append(opts.Verifiers, ed25519.PublicKey(fromHex(t, v)))
			}
			op := seal.NewOpener(key, opts)
			for i, st := range c.Steps {
				steps++
				topic := c.Topic
				if st.Topic != "" {
					topic = st.Topic
				}
				now = time.UnixMilli(c.NowMs)
				if st.NowMs != 0 {
					now = time.UnixMilli(st.NowMs)
				}
				pt, _, err := op.Open(topic, fromHex(t, st.Envelope))
				if st.Error != "" {
					want, known := publishedErrors[st.Error]
					if !known {
						t.Fatalf("step %d (%s): unknown error name %q", i+1, st.Note, st.Error)
					}
					if !errors.Is(err, want) {
						t.Errorf("step %d (%s): got %v, want %s", i+1, st.Note, err, st.Error)
					}
					if pt != nil {
						t.Errorf("step %d (%s): refused but returned a plaintext", i+1, st.Note)
					}
					continue
				}
				if err != nil {
					t.Errorf("step %d (%s): %v", i+1, st.Note, err)
				} else if !bytes.Equal(pt, fromHex(t, st.Plaintext)) {
					t.Errorf("step %d (%s): plaintext %q", i+1, st.Note, pt)
				}
			}
		})
	}
	t.Logf("%d cases, %d steps", len(vf.Cases), steps)
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runWithStdin(t *testing.T, stdin []byte, args ...string) ([]byte, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runIO(context.Background(), args, bytes.NewReader(stdin), &out, &errb)
	code := 0
	if err != nil {
		code = exitCode(err)
		errb.WriteString(err.Error())
	}
	return out.Bytes(), errb.String(), code
}

func TestKeygenSealOpen(t *testing.T) {
	dir := t.TempDir()
	reading := []byte(`{"bed":1,"spo2":97}`)
	for _, suite := range []string{"aes256gcm", "x25519", "mlkem768x25519"} {
		t.Run(suite, func(t *testing.T) {
			key := filepath.Join(dir, suite+".key")
			if _, errs, code := runWithStdin(t, nil, "keygen", "--suite", suite, "--out", key); code != 0 {
				t.Fatal(errs)
			}
			st, err := os.Stat(key)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %v, %v", st.Mode(), err)
			}
			// Never overwritten silently.
			if _, errs, code := runWithStdin(t, nil, "keygen", "--suite", suite, "--out", key); code != 2 || !strings.Contains(errs, "refusing to overwrite") {
				t.Errorf("overwrite: exit %d %s", code, errs)
			}
			sealWith := key
			if suite != "aes256gcm" {
				sealWith = key + ".pub"
				if st, err := os.Stat(sealWith); err != nil || st.Mode().Perm() != 0o644 {
					t.Fatalf("public key: %v", err)
				}
			}
			env, errs, code := runWithStdin(t, reading, "seal", "--key", sealWith, "--topic", "ward3/bed1/spo2")
			if code != 0 {
				t.Fatal(errs)
			}
			if bytes.Contains(env, []byte("spo2")) {
				t.Error("the envelope holds the reading in the clear")
			}
			pt, errs, code := runWithStdin(t, env, "open", "--key", key, "--topic", "ward3/bed1/spo2")
			if code != 0 || !bytes.Equal(pt, reading) {
				t.Fatalf("open: exit %d %q %s", code, pt, errs)
			}
			// A replay (with a state file) and an expired envelope.
			state := filepath.Join(dir, suite+".state")
			if _, errs, code := runWithStdin(t, env, "open", "--key", key, "--topic", "ward3/bed1/spo2", "--state", state); code != 0 {
				t.Fatal(errs)
			}
			if out, errs, code := runWithStdin(t, env, "open", "--key", key, "--topic", "ward3/bed1/spo2", "--state", state); code != 1 || len(out) != 0 || !strings.Contains(errs, "replayed") {
				t.Errorf("replay: exit %d %q", code, errs)
			}
			time.Sleep(30 * time.Millisecond)
			if out, errs, code := runWithStdin(t, env, "open", "--key", key, "--topic", "ward3/bed1/spo2", "--max-age", "20ms"); code != 1 || len(out) != 0 || !strings.Contains(errs, "expired") {
				t.Errorf("expired: exit %d %q", code, errs)
			}
			// Refusals: exit 1 and nothing on stdout.
			other := filepath.Join(dir, suite+".other")
			runWithStdin(t, nil, "keygen", "--suite", suite, "--out", other)
			bad := bytes.Clone(env)
			bad[len(bad)/2] ^= 0x10
			for name, c := range map[string]struct {
				env  []byte
				args []string
				want string
			}{
				"wrong key":   {env, []string{"--key", other, "--topic", "ward3/bed1/spo2"}, "another key"},
				"wrong topic": {env, []string{"--key", key, "--topic", "ward3/bed2/spo2"}, "another topic"},
				"tampered":    {bad, []string{"--key", key, "--topic", "ward3/bed1/spo2"}, "tampered"},
				"not sealed":  {reading, []string{"--key", key, "--topic", "ward3/bed1/spo2"}, "not a sealed envelope"},
			} {
				out, errs, code := runWithStdin(t, c.env, append([]string{"open"}, c.args...)...)
				if code != 1 || len(out) != 0 || !strings.Contains(errs, c.want) {
					t.Errorf("%s: exit %d, %d bytes out, %q", name, code, len(out), errs)
				}
			}
		})
	}
	t.Run("signed", func(t *testing.T) {
		key, sign := filepath.Join(dir, "s.key"), filepath.Join(dir, "dev.sign")
		runWithStdin(t, nil, "keygen", "--suite", "x25519", "--out", key)
		if _, errs, code := runWithStdin(t, nil, "keygen", "--suite", "ed25519", "--out", sign); code != 0 {
			t.Fatal(errs)
		}
		env, errs, code := runWithStdin(t, reading, "seal", "--key", key+".pub", "--topic", "t", "--sign", sign, "--armor")
		if code != 0 {
			t.Fatal(errs)
		}
		if pt, errs, code := runWithStdin(t, env, "open", "--key", key, "--topic", "t", "--verify", sign+".pub", "--armor"); code != 0 || !bytes.Equal(pt, reading) {
			t.Fatalf("%d %s", code, errs)
		}
		other := filepath.Join(dir, "other.sign")
		runWithStdin(t, nil, "keygen", "--suite", "ed25519", "--out", other)
		if out, errs, code := runWithStdin(t, env, "open", "--key", key, "--topic", "t", "--verify", other+".pub", "--armor"); code != 1 || len(out) != 0 || !strings.Contains(errs, "unknown sender") {
			t.Errorf("unknown signer: %d %q", code, errs)
		}
	})
}

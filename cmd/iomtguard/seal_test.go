package main

import (
	"bytes"
	"context"
	"fmt"
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

// TestSealLines: a stream of readings sealed one envelope per line in
// sessions opens back line for line; sessions cut the bytes; a reordered,
// replayed, damaged or session-orphaned line is named on stderr and skipped
// while the rest of the stream still opens; a line past the limit is refused.
func TestSealLines(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "ns.key")
	if _, errs, code := runWithStdin(t, nil, "keygen", "--suite", "mlkem768x25519", "--out", key); code != 0 {
		t.Fatal(errs)
	}
	var readings bytes.Buffer
	for i := 0; i < 250; i++ {
		fmt.Fprintf(&readings, "{\"bed\":1,\"spo2\":%d}\r\n", 90+i%10) // CRLF: the CR is not part of the reading
	}
	want := strings.ReplaceAll(readings.String(), "\r\n", "\n")
	sealed, errs, code := runWithStdin(t, readings.Bytes(), "seal", "--key", key+".pub", "--topic", "ward3/bed1/spo2", "--lines", "--session", "--rekey-every", "50")
	if code != 0 {
		t.Fatal(errs)
	}
	oneShot, _, _ := runWithStdin(t, readings.Bytes(), "seal", "--key", key+".pub", "--topic", "ward3/bed1/spo2", "--lines")
	envs := strings.Split(strings.TrimSuffix(string(sealed), "\n"), "\n")
	if len(envs) != 250 {
		t.Fatalf("%d envelopes for 250 readings", len(envs))
	}
	t.Logf("250 readings: %d bytes in sessions of 50, %d one-shot (%.1fx)", len(sealed), len(oneShot), float64(len(oneShot))/float64(len(sealed)))
	if len(sealed)*8 > len(oneShot) {
		t.Errorf("sessions save too little: %d bytes against %d", len(sealed), len(oneShot))
	}
	pt, errs, code := runWithStdin(t, sealed, "open", "--key", key, "--topic", "ward3/bed1/spo2", "--lines")
	if code != 0 || string(pt) != want {
		t.Fatalf("open --lines: exit %d, %d bytes (want %d): %s", code, len(pt), len(want), errs)
	}
	// A stream with trouble in it: line 1 is a session's second envelope
	// (its first not yet seen), then the first, a replay, garbage, an empty line.
	trouble := strings.Join([]string{envs[1], envs[0], envs[0], "not base64!", "", envs[2]}, "\n") + "\n"
	pt, errs, code = runWithStdin(t, []byte(trouble), "open", "--key", key, "--topic", "ward3/bed1/spo2", "--lines")
	lines := strings.Split(want, "\n")
	if code != 1 || string(pt) != lines[0]+"\n"+lines[2]+"\n" {
		t.Errorf("open --lines with trouble: exit %d, stdout %q", code, pt)
	}
	for _, w := range []string{"line 1: seal: session not known", "line 3: seal: envelope replayed", "line 4: ", "3 of 5 envelopes refused"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errs)
		}
	}
	// Misuse.
	if _, errs, code := runWithStdin(t, readings.Bytes(), "seal", "--key", key+".pub", "--topic", "t", "--session"); code != 2 || !strings.Contains(errs, "--lines") {
		t.Errorf("--session without --lines: exit %d %s", code, errs)
	}
	long := append(bytes.Repeat([]byte("x"), 17<<20), '\n')
	if _, errs, code := runWithStdin(t, long, "seal", "--key", key+".pub", "--topic", "t", "--lines"); code != 1 || !strings.Contains(errs, "longer than 16 MiB") {
		t.Errorf("a 17 MiB line: exit %d %s", code, errs)
	}
}

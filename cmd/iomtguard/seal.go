package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/pki"
	"github.com/iomtguard/iomtguard/seal"
)

// writeNew writes a key file that must not exist yet (or, with force,
// replaces it).
func writeNew(path string, data []byte, mode os.FileMode, force bool) error {
	if force {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	err := pki.WriteNewFile(path, data, mode)
	if errors.Is(err, pki.ErrExists) {
		return usageError{fmt.Errorf("%s exists: refusing to overwrite a key (use --force, or another path)", path)}
	}
	return err
}

func keygenCmd(stdout, stderr io.Writer) *cobra.Command {
	var suite, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen --suite aes256gcm|x25519|mlkem768x25519|ed25519 --out PATH",
		Short: "Make a payload encryption key (PATH, and PATH.pub for public-key suites) or a signing key",
		Long: `keygen writes a new key as PEM to PATH (mode 0600) and, for public-key suites, the public key to
PATH.pub (0644). It never overwrites a key unless --force is given.

  aes256gcm       a shared 256-bit key for a group of devices and their readers (PATH only)
  x25519          an HPKE key pair: devices seal with PATH.pub, only PATH opens
  mlkem768x25519  the same with the hybrid post-quantum KEM (ML-KEM-768 + X25519)
  ed25519         a device signing key (PATH) and its verify key (PATH.pub): seal --sign, open --verify

Which suite to choose: see 'Payload encryption' in the README.`,
		Example: `  iomtguard keygen --suite mlkem768x25519 --out nurse-station.key
  iomtguard keygen --suite ed25519 --out bed1-ecg.sign`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{errors.New("--out is required")}
			}
			var priv, pub []byte
			if suite == "ed25519" {
				_, k, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					return err
				}
				priv, pub = seal.MarshalSigningKey(k)
			} else {
				s, err := seal.ParseSuite(suite)
				if err != nil {
					return usageError{err}
				}
				k, err := seal.GenerateKey(s)
				if err != nil {
					return err
				}
				if priv, err = k.MarshalPEM(); err != nil {
					return err
				}
				if p := k.Public(); p != nil {
					pub = p.MarshalPEM()
				}
			}
			if pub != nil {
				if _, err := os.Stat(out + ".pub"); err == nil && !force {
					return usageError{fmt.Errorf("%s.pub exists: refusing to overwrite a key (use --force, or another path)", out)}
				}
			}
			if err := writeNew(out, priv, 0o600, force); err != nil {
				return err
			}
			msg := fmt.Sprintf("wrote %s (%s, secret, 0600)", out, suite)
			if pub != nil {
				if err := writeNew(out+".pub", pub, 0o644, force); err != nil {
					return err
				}
				msg += fmt.Sprintf(" and %s.pub (public)", out)
			}
			fmt.Fprintln(stderr, msg)
			return nil
		},
	}
	cmd.Flags().StringVar(&suite, "suite", "mlkem768x25519", "aes256gcm, x25519, mlkem768x25519 or ed25519")
	cmd.Flags().StringVarP(&out, "out", "o", "", "key file to write")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	return cmd
}

func readKeyFile(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{err}
	}
	k, err := seal.ParsePEM(b)
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: %w", path, err)}
	}
	return k, nil
}

// maxLine bounds one line of seal --lines and open --lines.
const maxLine = 16 << 20

// readLines calls fn with each line of r (without its newline or a
// trailing CR) and its number; it stops at the first error fn returns.
func readLines(r io.Reader, fn func(n int, line []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		var line []byte
		for {
			part, err := br.ReadSlice('\n')
			line = append(line, part...)
			if len(line) > maxLine {
				return fmt.Errorf("line %d is longer than 16 MiB", n)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF {
				if len(line) == 0 {
					return nil
				}
				break
			}
			if err != nil {
				return err
			}
			break
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if err := fn(n, line); err != nil {
			return err
		}
	}
}

func sealCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var key, topic, sign string
	var armor, lines, session bool
	var rekey int
	cmd := &cobra.Command{
		Use:   "seal --key KEY --topic TOPIC [--sign SIGNKEY] [--lines [--session]] < payload > envelope",
		Short: "Seal a payload read from stdin for an MQTT topic (envelope on stdout)",
		Long: `seal encrypts stdin into a sealed envelope on stdout, bound to TOPIC: the envelope opens only
for that topic, with the key it was sealed for, once, and within ten minutes by default.
KEY is an aes256gcm key, or the public key (.pub) of an x25519 or mlkem768x25519 key.
--sign adds an Ed25519 signature with a device signing key. --armor writes base64.

--lines seals a stream of readings: each line of stdin is one reading, and each envelope is
written as one line of base64 as soon as its reading is read (mosquitto_pub -l publishes one
message per line). --session then seals them in sessions: one HPKE encapsulation (1,120 bytes
with mlkem768x25519) for every --rekey-every readings instead of one per reading, so a reading
costs 69 bytes of overhead; the reader must see a session's first envelope (open --lines keeps
the sessions it has opened). The envelope format is in seal/SPEC.md.`,
		Example: `  echo '{"spo2":97}' | iomtguard seal --key nurse-station.key.pub --topic ward3/bed1/spo2 > reading.env
  echo '{"spo2":97}' | iomtguard seal --key nurse-station.key.pub --topic ward3/bed1/spo2 | mosquitto_pub -t ward3/bed1/spo2 -s
  sensor-reader | iomtguard seal --key nurse-station.key.pub --topic ward3/bed1/spo2 --lines --session | mosquitto_pub -t ward3/bed1/spo2 -l`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" || topic == "" {
				return usageError{errors.New("--key and --topic are required")}
			}
			if session && !lines {
				return usageError{errors.New("--session seals a stream: it needs --lines (one reading per line)")}
			}
			if rekey < 1 || rekey > 1<<20 {
				return usageError{fmt.Errorf("--rekey-every: want 1 to 1048576, not %d", rekey)}
			}
			k, err := readKeyFile(key)
			if err != nil {
				return err
			}
			opts := seal.Options{Session: session, RekeyEvery: rekey}
			if sign != "" {
				sk, err := readKeyFile(sign)
				if err != nil {
					return err
				}
				p, ok := sk.(ed25519.PrivateKey)
				if !ok {
					return usageError{fmt.Errorf("%s is not a signing key", sign)}
				}
				opts.Signer = p
			}
			sl, err := seal.NewSealer(k, opts)
			if err != nil {
				return usageError{fmt.Errorf("%s: %w", key, err)}
			}
			if lines {
				return readLines(stdin, func(n int, line []byte) error {
					env, err := sl.Seal(topic, line)
					if err != nil {
						return fmt.Errorf("line %d: %w", n, err)
					}
					_, err = stdout.Write(append([]byte(base64.StdEncoding.EncodeToString(env)), '\n'))
					return err
				})
			}
			pt, err := io.ReadAll(io.LimitReader(stdin, 256<<20))
			if err != nil {
				return err
			}
			env, err := sl.Seal(topic, pt)
			if err != nil {
				return err
			}
			if armor {
				env = append([]byte(base64.StdEncoding.EncodeToString(env)), '\n')
			}
			_, err = stdout.Write(env)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&key, "key", "", "key file: aes256gcm key, or x25519/mlkem768x25519 public key")
	f.StringVar(&topic, "topic", "", "MQTT topic the payload is published on")
	f.StringVar(&sign, "sign", "", "Ed25519 signing key (keygen --suite ed25519)")
	f.BoolVar(&armor, "armor", false, "write the envelope as base64")
	f.BoolVar(&lines, "lines", false, "seal each line of stdin as one reading; write one base64 envelope per line")
	f.BoolVar(&session, "session", false, "with --lines: seal in sessions (x25519, mlkem768x25519): one encapsulation per --rekey-every readings")
	f.IntVar(&rekey, "rekey-every", 100, "with --session: readings per session")
	return cmd
}

func openCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var key, topic, state string
	var verify []string
	var maxAge time.Duration
	var armor, lines bool
	cmd := &cobra.Command{
		Use:   "open --key KEY --topic TOPIC [--verify PUB...] [--lines] < envelope > payload",
		Short: "Open a sealed envelope read from stdin (payload on stdout, nothing on failure)",
		Long: `open checks and decrypts an envelope from stdin and writes the payload to stdout. It refuses,
with a message on stderr, exit status 1 and nothing on stdout, an envelope sealed for another key
or another topic, tampered with, expired (older than --max-age), or signed by a key not given
with --verify; --verify also makes a signature required. With --state FILE, an envelope opened
by an earlier run with the same file is refused as a replay.

--lines opens a stream: each line of stdin is one base64 envelope (as seal --lines and
mosquitto_sub write them), and each payload is written as one line as soon as it opens. A refused
envelope is named on stderr with its line number and skipped; the exit status is 1 if any was.
Sessions opened in the stream are kept for the rest of it (not in --state: a later run needs a
session's first envelope again).`,
		Example: `  iomtguard open --key nurse-station.key --topic ward3/bed1/spo2 < reading.env
  mosquitto_sub -t ward3/bed1/spo2 -C 1 | iomtguard open --key nurse-station.key --topic ward3/bed1/spo2 --verify bed1-ecg.sign.pub
  mosquitto_sub -t ward3/bed1/spo2 | iomtguard open --key nurse-station.key --topic ward3/bed1/spo2 --lines`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" || topic == "" {
				return usageError{errors.New("--key and --topic are required")}
			}
			k, err := readKeyFile(key)
			if err != nil {
				return err
			}
			sk, ok := k.(*seal.Key)
			if !ok {
				return usageError{fmt.Errorf("%s is not a key that opens envelopes (a public key seals; open with the private key)", key)}
			}
			oo := seal.OpenOptions{MaxAge: maxAge}
			for _, v := range verify {
				vk, err := readKeyFile(v)
				if err != nil {
					return err
				}
				p, ok := vk.(ed25519.PublicKey)
				if !ok {
					return usageError{fmt.Errorf("%s is not a verify key", v)}
				}
				oo.Verifiers = append(oo.Verifiers, p)
				oo.RequireSignature = true
			}
			op := seal.NewOpener(sk, oo)
			if state != "" {
				if f, err := os.Open(state); err == nil {
					err = op.LoadState(f)
					f.Close()
					if err != nil {
						return fmt.Errorf("%s: %w", state, err)
					}
				} else if !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			saveState := func() error {
				if state == "" {
					return nil
				}
				var b bytes.Buffer
				if err := op.SaveState(&b); err != nil {
					return err
				}
				tmp := state + ".tmp"
				if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
					return err
				}
				return os.Rename(tmp, state)
			}
			if lines {
				var total, refused int
				err := readLines(stdin, func(n int, line []byte) error {
					if len(bytes.TrimSpace(line)) == 0 {
						return nil
					}
					total++
					env, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(line)))
					if err == nil {
						var pt []byte
						if pt, _, err = op.Open(topic, env); err == nil {
							_, werr := stdout.Write(append(pt, '\n'))
							return werr
						}
					}
					refused++
					fmt.Fprintf(stderr, "line %d: %v\n", n, err)
					return nil
				})
				if serr := saveState(); err == nil {
					err = serr
				}
				if err != nil {
					return err
				}
				if refused > 0 {
					return fmt.Errorf("%d of %d envelopes refused", refused, total)
				}
				return nil
			}
			env, err := io.ReadAll(io.LimitReader(stdin, 257<<20))
			if err != nil {
				return err
			}
			if armor {
				env, err = base64.StdEncoding.DecodeString(string(bytes.TrimSpace(env)))
				if err != nil {
					return fmt.Errorf("--armor: %w", err)
				}
			}
			pt, _, err := op.Open(topic, env)
			if err != nil {
				return err
			}
			if err := saveState(); err != nil {
				return err
			}
			_, err = stdout.Write(pt)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&key, "key", "", "key file: aes256gcm key, or x25519/mlkem768x25519 private key")
	f.StringVar(&topic, "topic", "", "MQTT topic the envelope was published on")
	f.StringSliceVar(&verify, "verify", nil, "Ed25519 verify keys of the devices allowed to have sealed it")
	f.DurationVar(&maxAge, "max-age", 10*time.Minute, "refuse envelopes sealed longer ago than this (negative: no limit)")
	f.BoolVar(&armor, "armor", false, "read the envelope as base64")
	f.BoolVar(&lines, "lines", false, "read one base64 envelope per line; write one payload per line")
	f.StringVar(&state, "state", "", "replay state file: envelopes opened before (by runs with the same file) are refused as replays")
	return cmd
}

package main

import (
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
	"github.com/iomtguard/iomtguard/internal/seal"
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

func sealCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var key, topic, sign string
	var armor bool
	cmd := &cobra.Command{
		Use:   "seal --key KEY --topic TOPIC [--sign SIGNKEY] < payload > envelope",
		Short: "Seal a payload read from stdin for an MQTT topic (envelope on stdout)",
		Long: `seal encrypts stdin into a sealed envelope on stdout, bound to TOPIC: the envelope opens only
for that topic, with the key it was sealed for, once, and within ten minutes by default.
KEY is an aes256gcm key, or the public key (.pub) of an x25519 or mlkem768x25519 key.
--sign adds an Ed25519 signature with a device signing key. --armor writes base64.`,
		Example: `  echo '{"spo2":97}' | iomtguard seal --key nurse-station.key.pub --topic ward3/bed1/spo2 > reading.env
  echo '{"spo2":97}' | iomtguard seal --key nurse-station.key.pub --topic ward3/bed1/spo2 | mosquitto_pub -t ward3/bed1/spo2 -s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" || topic == "" {
				return usageError{errors.New("--key and --topic are required")}
			}
			k, err := readKeyFile(key)
			if err != nil {
				return err
			}
			opts := seal.Options{}
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
	return cmd
}

func openCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var key, topic, state string
	var verify []string
	var maxAge time.Duration
	var armor bool
	cmd := &cobra.Command{
		Use:   "open --key KEY --topic TOPIC [--verify PUB...] < envelope > payload",
		Short: "Open a sealed envelope read from stdin (payload on stdout, nothing on failure)",
		Long: `open checks and decrypts an envelope from stdin and writes the payload to stdout. It refuses,
with a message on stderr, exit status 1 and nothing on stdout, an envelope sealed for another key
or another topic, tampered with, expired (older than --max-age), or signed by a key not given
with --verify; --verify also makes a signature required. With --state FILE, an envelope opened
by an earlier run with the same file is refused as a replay.`,
		Example: `  iomtguard open --key nurse-station.key --topic ward3/bed1/spo2 < reading.env
  mosquitto_sub -t ward3/bed1/spo2 -C 1 | iomtguard open --key nurse-station.key --topic ward3/bed1/spo2 --verify bed1-ecg.sign.pub`,
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
			pt, _, err := op.Open(topic, env)
			if err != nil {
				return err
			}
			if state != "" {
				var b bytes.Buffer
				if err := op.SaveState(&b); err != nil {
					return err
				}
				tmp := state + ".tmp"
				if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
					return err
				}
				if err := os.Rename(tmp, state); err != nil {
					return err
				}
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
	f.StringVar(&state, "state", "", "replay state file: envelopes opened before (by runs with the same file) are refused as replays")
	return cmd
}

package seal

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Suite names a payload encryption scheme.
type Suite uint8

const (
	AES256GCM      Suite = 1
	X25519         Suite = 2
	MLKEM768X25519 Suite = 3
)

var suiteNames = map[Suite]string{AES256GCM: "aes256gcm", X25519: "x25519", MLKEM768X25519: "mlkem768x25519"}

func (s Suite) String() string {
	if n, ok := suiteNames[s]; ok {
		return n
	}
	return fmt.Sprintf("suite(%d)", uint8(s))
}

// ParseSuite reads a suite name.
func ParseSuite(name string) (Suite, error) {
	for s, n := range suiteNames {
		if n == strings.ToLower(name) {
			return s, nil
		}
	}
	return 0, fmt.Errorf("seal: unknown suite %q (want aes256gcm, x25519 or mlkem768x25519)", name)
}

// hpkeKEM returns the suite's HPKE KEM (nil for aes256gcm).
func (s Suite) hpkeKEM() hpke.KEM {
	switch s {
	case X25519:
		return hpke.DHKEM(ecdh.X25519())
	case MLKEM768X25519:
		return hpke.MLKEM768X25519()
	}
	return nil
}

// HPKE's KDF and AEAD for both public-key suites.
var (
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.AES256GCM()
)

// hpkeInfo binds the HPKE context to this envelope format and suite.
func hpkeInfo(s Suite) []byte {
	return []byte{'i', 'o', 'm', 't', 'g', 'u', 'a', 'r', 'd', '-', 's', 'e', 'a', 'l', '-', 'v', '1', byte(s)}
}

// Key is what opens envelopes: the shared key of aes256gcm, or the private
// key of an HPKE suite. It also seals (aes256gcm) or gives the public key
// that seals (HPKE suites).
type Key struct {
	Suite Suite
	sym   []byte
	priv  hpke.PrivateKey
	id    [8]byte
}

// PublicKey seals envelopes for the holder of the matching Key.
type PublicKey struct {
	Suite Suite
	pub   hpke.PublicKey
	id    [8]byte
}

// ID returns the key's ID (the envelope's key ID field).
func (k *Key) ID() [8]byte { return k.id }

// ID returns the key's ID.
func (p *PublicKey) ID() [8]byte { return p.id }

// keyID is SHA-256("iomtguard seal key" || suite || public bytes (HPKE) or
// the key (aes256gcm)), first 8 bytes.
func keyID(s Suite, b []byte) [8]byte {
	h := sha256.New()
	h.Write([]byte("iomtguard seal key"))
	h.Write([]byte{byte(s)})
	h.Write(b)
	var id [8]byte
	copy(id[:], h.Sum(nil))
	return id
}

// GenerateKey makes a new key of the suite.
func GenerateKey(s Suite) (*Key, error) {
	if s == AES256GCM {
		b := make([]byte, 32)
		rand.Read(b)
		return NewSymmetricKey(b)
	}
	kem := s.hpkeKEM()
	if kem == nil {
		return nil, fmt.Errorf("seal: unknown suite %d", s)
	}
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("seal: generate %s key: %w", s, err)
	}
	return &Key{Suite: s, priv: priv, id: keyID(s, priv.PublicKey().Bytes())}, nil
}

// NewSymmetricKey makes an aes256gcm key from 32 bytes.
func NewSymmetricKey(b []byte) (*Key, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("seal: an aes256gcm key is 32 bytes, not %d", len(b))
	}
	k := &Key{Suite: AES256GCM, sym: append([]byte(nil), b...)}
	k.id = keyID(AES256GCM, k.sym)
	return k, nil
}

// NewPrivateKey reads an HPKE suite's private key (RFC 9180
// SerializePrivateKey form).
func NewPrivateKey(s Suite, b []byte) (*Key, error) {
	kem := s.hpkeKEM()
	if kem == nil {
		return nil, fmt.Errorf("seal: %s has no private key", s)
	}
	priv, err := kem.NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("seal: %s private key: %w", s, err)
	}
	return &Key{Suite: s, priv: priv, id: keyID(s, priv.PublicKey().Bytes())}, nil
}

// NewPublicKey reads an HPKE suite's public key.
func NewPublicKey(s Suite, b []byte) (*PublicKey, error) {
	kem := s.hpkeKEM()
	if kem == nil {
		return nil, fmt.Errorf("seal: %s has no public key", s)
	}
	pub, err := kem.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("seal: %s public key: %w", s, err)
	}
	return &PublicKey{Suite: s, pub: pub, id: keyID(s, b)}, nil
}

// Public returns the public key of an HPKE key (nil for aes256gcm).
func (k *Key) Public() *PublicKey {
	if k.priv == nil {
		return nil
	}
	return &PublicKey{Suite: k.Suite, pub: k.priv.PublicKey(), id: k.id}
}

// PEM block types of key files.
const (
	pemKey       = "IOMTGUARD SEAL KEY"
	pemPublicKey = "IOMTGUARD SEAL PUBLIC KEY"
	pemSigning   = "IOMTGUARD SIGNING KEY"
	pemVerify    = "IOMTGUARD VERIFY KEY"
)

// MarshalPEM writes the key (secret!) as PEM.
func (k *Key) MarshalPEM() ([]byte, error) {
	b := k.sym
	if k.priv != nil {
		var err error
		if b, err = k.priv.Bytes(); err != nil {
			return nil, err
		}
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemKey, Headers: map[string]string{"Suite": k.Suite.String(), "Key-ID": hex.EncodeToString(k.id[:])}, Bytes: b}), nil
}

// MarshalPEM writes the public key as PEM.
func (p *PublicKey) MarshalPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Headers: map[string]string{"Suite": p.Suite.String(), "Key-ID": hex.EncodeToString(p.id[:])}, Bytes: p.pub.Bytes()})
}

// ErrKeyFile marks a key file that cannot be read.
var ErrKeyFile = errors.New("seal: key file")

// ParsePEM reads a key file: a Key, a *PublicKey, an ed25519.PrivateKey
// (signing key) or an ed25519.PublicKey (verify key).
func ParsePEM(data []byte) (any, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrKeyFile)
	}
	switch blk.Type {
	case pemSigning:
		if len(blk.Bytes) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: signing key of %d bytes", ErrKeyFile, len(blk.Bytes))
		}
		return ed25519.NewKeyFromSeed(blk.Bytes), nil
	case pemVerify:
		if len(blk.Bytes) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: verify key of %d bytes", ErrKeyFile, len(blk.Bytes))
		}
		return ed25519.PublicKey(blk.Bytes), nil
	}
	s, err := ParseSuite(blk.Headers["Suite"])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	switch blk.Type {
	case pemKey:
		if s == AES256GCM {
			return NewSymmetricKey(blk.Bytes)
		}
		return NewPrivateKey(s, blk.Bytes)
	case pemPublicKey:
		return NewPublicKey(s, blk.Bytes)
	}
	return nil, fmt.Errorf("%w: unknown PEM type %q", ErrKeyFile, blk.Type)
}

// MarshalSigningKey writes an Ed25519 signing key (its seed) and its verify
// key as PEM.
func MarshalSigningKey(k ed25519.PrivateKey) (priv, pub []byte) {
	id := SignerID(k.Public().(ed25519.PublicKey))
	h := map[string]string{"Key-ID": hex.EncodeToString(id[:])}
	return pem.EncodeToMemory(&pem.Block{Type: pemSigning, Headers: h, Bytes: k.Seed()}),
		pem.EncodeToMemory(&pem.Block{Type: pemVerify, Headers: h, Bytes: k.Public().(ed25519.PublicKey)})
}

// SignerID is the sender ID of envelopes signed by the key: SHA-256 of
// "iomtguard seal signer" and the public key, first 8 bytes.
func SignerID(pub ed25519.PublicKey) [8]byte {
	h := sha256.Sum256(append([]byte("iomtguard seal signer"), pub...))
	var id [8]byte
	copy(id[:], h[:])
	return id
}

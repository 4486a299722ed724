package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"
)

// Errors of Open; each refusal has its own.
var (
	ErrMalformed      = errors.New("seal: not a sealed envelope")
	ErrTampered       = errors.New("seal: envelope tampered with")
	ErrWrongKey       = errors.New("seal: sealed for another key")
	ErrWrongTopic     = errors.New("seal: sealed for another topic")
	ErrExpired        = errors.New("seal: envelope expired")
	ErrReplayed       = errors.New("seal: envelope replayed")
	ErrUnknownSession = errors.New("seal: session not known (its first message was not received)")
	ErrUnknownSender  = errors.New("seal: signed by an unknown sender")
)

const (
	version     = 1
	flagSigned  = 0x01
	flagSession = 0x02
	flagEnc     = 0x04
	headerLen   = 41
	tagLen      = 16
	crcLen      = 4
	sigLen      = ed25519.SignatureSize
	aadPrefix   = "iomtguard-seal-v1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// topicTag is SHA-256(topic), first 4 bytes.
func topicTag(topic string) [4]byte {
	h := sha256.Sum256([]byte(topic))
	return [4]byte(h[:4])
}

// aad is the additional authenticated data: the format, the topic and the
// header.
func aad(dst []byte, topic string, header []byte) []byte {
	dst = append(dst, aadPrefix...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(topic)))
	dst = append(dst, topic...)
	return append(dst, header...)
}

// Options configure a Sealer.
type Options struct {
	// Session seals with one HPKE context per session (HPKE suites only).
	Session bool
	// RekeyEvery is how many messages a session lasts (default 100).
	RekeyEvery int
	// Signer, when set, signs every envelope; the sender ID is then the
	// signing key's ID.
	Signer ed25519.PrivateKey
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Sealer seals payloads for one recipient key. It is safe for concurrent
// use; sequence numbers are unique per Sealer.
type Sealer struct {
	suite  Suite
	keyID  [8]byte
	sym    cipher.AEAD // aes256gcm
	pub    hpke.PublicKey
	opts   Options
	sender [8]byte

	mu      sync.Mutex
	seq     uint64
	sess    cipher.AEAD
	sessID  [8]byte
	sessEnc []byte
	sessN   int
}

// NewSealer seals with key, which is a *Key (aes256gcm) or a *PublicKey.
func NewSealer(key any, opts Options) (*Sealer, error) {
	s := &Sealer{opts: opts}
	if s.opts.RekeyEvery <= 0 {
		s.opts.RekeyEvery = 100
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	switch k := key.(type) {
	case *Key:
		if k.Suite != AES256GCM {
			if k.priv == nil {
				return nil, errors.New("seal: empty key")
			}
			return NewSealer(k.Public(), opts)
		}
		if opts.Session {
			return nil, errors.New("seal: sessions are for the HPKE suites; aes256gcm needs none")
		}
		s.suite, s.keyID, s.sym = k.Suite, k.id, newGCM(k.sym)
	case *PublicKey:
		s.suite, s.keyID, s.pub = k.Suite, k.id, k.pub
	default:
		return nil, fmt.Errorf("seal: cannot seal with a %T", key)
	}
	if opts.Signer != nil {
		s.sender = SignerID(opts.Signer.Public().(ed25519.PublicKey))
	} else {
		rand.Read(s.sender[:])
	}
	return s, nil
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("seal: " + err.Error()) // keys are 32 bytes by construction
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic("seal: " + err.Error())
	}
	return g
}

// sessionKey derives the session key from an HPKE context's exporter.
const sessionExport = "iomtguard-seal-v1 session key"

// Seal returns the envelope of plaintext for topic.
func (s *Sealer) Seal(topic string, plaintext []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	flags := byte(0)
	if s.opts.Signer != nil {
		flags |= flagSigned
	}
	var enc []byte
	var sessAEAD cipher.AEAD
	if s.opts.Session && s.pub != nil {
		flags |= flagSession
		if s.sess == nil || s.sessN >= s.opts.RekeyEvery {
			e, ctx, err := hpke.NewSender(s.pub, hpkeKDF, hpkeAEAD, hpkeInfo(s.suite))
			if err != nil {
				return nil, fmt.Errorf("seal: %w", err)
			}
			k, err := ctx.Export(sessionExport, 32)
			if err != nil {
				return nil, fmt.Errorf("seal: %w", err)
			}
			s.sess, s.sessEnc, s.sessN = newGCM(k), e, 0
			rand.Read(s.sessID[:])
		}
		if s.sessN == 0 {
			flags |= flagEnc
			enc = s.sessEnc
		}
		s.sessN++
		sessAEAD = s.sess
	}
	b := make([]byte, 0, headerLen+8+2+len(enc)+12+len(plaintext)+tagLen+sigLen+crcLen)
	b = append(b, 'I', 'G', version, byte(s.suite), flags)
	b = append(b, s.keyID[:]...)
	tt := topicTag(topic)
	b = append(b, tt[:]...)
	b = append(b, s.sender[:]...)
	b = binary.BigEndian.AppendUint64(b, s.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(s.opts.Now().UnixMilli()))
	if flags&flagSession != 0 {
		b = append(b, s.sessID[:]...)
	}
	var hpkeSender *hpke.Sender
	if s.pub != nil && flags&flagSession == 0 {
		e, ctx, err := hpke.NewSender(s.pub, hpkeKDF, hpkeAEAD, hpkeInfo(s.suite))
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		enc, hpkeSender = e, ctx
	}
	if enc != nil {
		b = binary.BigEndian.AppendUint16(b, uint16(len(enc)))
		b = append(b, enc...)
	}
	var nonce []byte
	switch {
	case s.sym != nil:
		nonce = make([]byte, 12)
		rand.Read(nonce)
		b = append(b, nonce...)
	case sessAEAD != nil:
		nonce = make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[4:], s.seq)
	}
	ad := aad(nil, topic, b)
	switch {
	case s.sym != nil:
		b = s.sym.Seal(b, nonce, plaintext, ad)
	case sessAEAD != nil:
		b = sessAEAD.Seal(b, nonce, plaintext, ad)
	default:
		ct, err := hpkeSender.Seal(ad, plaintext)
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		b = append(b, ct...)
	}
	if s.opts.Signer != nil {
		b = append(b, ed25519.Sign(s.opts.Signer, sigInput(topic, b))...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

func sigInput(topic string, env []byte) []byte {
	return aad([]byte("sig:"), topic, env)
}

// OpenOptions configure an Opener. Zero values give the defaults.
type OpenOptions struct {
	// MaxAge refuses envelopes older than this (default 10 minutes; a
	// negative value disables the check); MaxSkew allows clocks ahead of
	// the opener's (default 2 minutes).
	MaxAge, MaxSkew time.Duration
	// Verifiers are the senders' verify keys; RequireSignature refuses
	// unsigned envelopes.
	Verifiers        []ed25519.PublicKey
	RequireSignature bool
	// Window is the replay window per sender, in sequence numbers (default
	// 1024); Senders and Sessions bound the state kept (defaults 10,000 and
	// 4,096; the least recently used are forgotten).
	Window, Senders, Sessions int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Opener opens envelopes sealed for one key. It is safe for concurrent use.
type Opener struct {
	key       *Key
	sym       cipher.AEAD
	opts      OpenOptions
	verifiers map[[8]byte]ed25519.PublicKey

	mu       sync.Mutex
	replay   *lru[[8]byte, *window]
	sessions *lru[[8]byte, cipher.AEAD]
}

// NewOpener opens envelopes for key.
func NewOpener(key *Key, opts OpenOptions) *Opener {
	if opts.MaxAge == 0 {
		opts.MaxAge = 10 * time.Minute
	}
	if opts.MaxSkew == 0 {
		opts.MaxSkew = 2 * time.Minute
	}
	if opts.Window <= 0 {
		opts.Window = 1024
	}
	if opts.Senders <= 0 {
		opts.Senders = 10000
	}
	if opts.Sessions <= 0 {
		opts.Sessions = 4096
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	o := &Opener{key: key, opts: opts, verifiers: map[[8]byte]ed25519.PublicKey{},
		replay: newLRU[[8]byte, *window](opts.Senders), sessions: newLRU[[8]byte, cipher.AEAD](opts.Sessions)}
	if key.Suite == AES256GCM {
		o.sym = newGCM(key.sym)
	}
	for _, v := range opts.Verifiers {
		o.verifiers[SignerID(v)] = v
	}
	return o
}

// Envelope is what Open learned about an envelope.
type Envelope struct {
	Suite    Suite
	Sender   [8]byte
	Seq      uint64
	Time     time.Time
	Signed   bool
	Session  bool
	Overhead int // envelope bytes beyond the plaintext
}

// Open checks an envelope for topic and returns its plaintext.
func (o *Opener) Open(topic string, env []byte) ([]byte, *Envelope, error) {
	body, err := frame(env)
	if err != nil {
		return nil, nil, err
	}
	suite, flags := Suite(env[3]), env[4]
	if suite != o.key.Suite || [8]byte(env[5:13]) != o.key.id {
		return nil, nil, ErrWrongKey
	}
	if [4]byte(env[13:17]) != topicTag(topic) {
		return nil, nil, ErrWrongTopic
	}
	info := &Envelope{Suite: suite, Sender: [8]byte(env[17:25]), Seq: binary.BigEndian.Uint64(env[25:33]),
		Time: time.UnixMilli(int64(binary.BigEndian.Uint64(env[33:41]))), Signed: flags&flagSigned != 0, Session: flags&flagSession != 0}
	if flags&^(flagSigned|flagSession|flagEnc) != 0 || (flags&flagEnc != 0 && flags&flagSession == 0) {
		return nil, nil, fmt.Errorf("%w: flags 0x%02x", ErrMalformed, flags)
	}
	if info.Session && suite == AES256GCM {
		return nil, nil, fmt.Errorf("%w: a session on aes256gcm", ErrMalformed)
	}
	if info.Signed {
		if len(body) < headerLen+sigLen+tagLen {
			return nil, nil, ErrMalformed
		}
		v, ok := o.verifiers[info.Sender]
		if !ok {
			return nil, nil, ErrUnknownSender
		}
		sigAt := len(body) - sigLen
		if !ed25519.Verify(v, sigInput(topic, body[:sigAt]), body[sigAt:]) {
			return nil, nil, fmt.Errorf("%w: bad signature", ErrTampered)
		}
		body = body[:sigAt]
	} else if o.opts.RequireSignature {
		return nil, nil, fmt.Errorf("%w: unsigned envelope", ErrUnknownSender)
	}
	p := headerLen
	var sessID [8]byte
	if info.Session {
		if len(body) < p+8 {
			return nil, nil, ErrMalformed
		}
		sessID = [8]byte(body[p : p+8])
		p += 8
	}
	var enc []byte
	if suite != AES256GCM && (!info.Session || flags&flagEnc != 0) {
		if len(body) < p+2 {
			return nil, nil, ErrMalformed
		}
		n := int(binary.BigEndian.Uint16(body[p:]))
		if len(body) < p+2+n {
			return nil, nil, ErrMalformed
		}
		enc = body[p+2 : p+2+n]
		p += 2 + n
	}
	var nonce []byte
	switch {
	case suite == AES256GCM:
		if len(body) < p+12 {
			return nil, nil, ErrMalformed
		}
		nonce = body[p : p+12]
		p += 12
	case info.Session:
		nonce = make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[4:], info.Seq)
	}
	if len(body)-p < tagLen {
		return nil, nil, ErrMalformed
	}
	ad := aad(nil, topic, body[:p])
	ct := body[p:]
	var pt []byte
	switch {
	case suite == AES256GCM:
		pt, err = o.sym.Open(nil, nonce, ct, ad)
	case info.Session:
		var g cipher.AEAD
		if enc != nil {
			k, xerr := hpkeExport(o.key.priv, hpkeKDF, hpkeAEAD, enc, hpkeInfo(suite), sessionExport, 32)
			if xerr != nil {
				return nil, nil, fmt.Errorf("%w: encapsulated key: %v", ErrTampered, xerr)
			}
			g = newGCM(k)
		} else {
			o.mu.Lock()
			g, _ = o.sessions.get(sessID)
			o.mu.Unlock()
			if g == nil {
				return nil, nil, ErrUnknownSession
			}
		}
		if pt, err = g.Open(nil, nonce, ct, ad); err == nil && enc != nil {
			o.mu.Lock()
			o.sessions.put(sessID, g)
			o.mu.Unlock()
		}
	default:
		pt, err = hpkeOpen(o.key.priv, hpkeKDF, hpkeAEAD, enc, hpkeInfo(suite), ad, ct)
	}
	if err != nil {
		return nil, nil, ErrTampered
	}
	// Authenticated from here on: the time and sequence number can be trusted.
	now := o.opts.Now()
	if o.opts.MaxAge > 0 && (info.Time.Before(now.Add(-o.opts.MaxAge)) || info.Time.After(now.Add(o.opts.MaxSkew))) {
		return nil, nil, fmt.Errorf("%w: sealed at %s, now %s", ErrExpired, info.Time.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	o.mu.Lock()
	w, _ := o.replay.get(info.Sender)
	if w == nil {
		w = newWindow(o.opts.Window)
		o.replay.put(info.Sender, w)
	}
	fresh := w.check(info.Seq)
	o.mu.Unlock()
	if !fresh {
		return nil, nil, fmt.Errorf("%w: sequence number %d", ErrReplayed, info.Seq)
	}
	info.Overhead = len(env) - len(pt)
	return pt, info, nil
}

// window is a sliding replay window over sequence numbers (RFC 4303 section
// 3.4.3's algorithm).
type window struct {
	top  uint64
	bits []uint64
	size uint64
}

func newWindow(size int) *window {
	return &window{bits: make([]uint64, (size+63)/64), size: uint64(size)}
}

// check records seq and reports whether it was new and inside the window.
func (w *window) check(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if seq > w.top {
		shift := seq - w.top
		if shift >= w.size {
			clear(w.bits)
		} else {
			for i := uint64(0); i < shift; i++ {
				n := (w.top + 1 + i) % w.size
				w.bits[n/64] &^= 1 << (n % 64)
			}
		}
		w.top = seq
	} else if w.top-seq >= w.size {
		return false
	}
	n := seq % w.size
	if w.bits[n/64]&(1<<(n%64)) != 0 {
		return false
	}
	w.bits[n/64] |= 1 << (n % 64)
	return true
}

// lru is a small least-recently-used map.
type lru[K comparable, V any] struct {
	cap  int
	m    map[K]*lruEntry[K, V]
	head *lruEntry[K, V]
	tail *lruEntry[K, V]
}

type lruEntry[K comparable, V any] struct {
	k          K
	v          V
	prev, next *lruEntry[K, V]
}

func newLRU[K comparable, V any](cap int) *lru[K, V] {
	return &lru[K, V]{cap: cap, m: map[K]*lruEntry[K, V]{}}
}

func (l *lru[K, V]) unlink(e *lruEntry[K, V]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (l *lru[K, V]) front(e *lruEntry[K, V]) {
	e.next = l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
}

func (l *lru[K, V]) get(k K) (V, bool) {
	e, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.unlink(e)
	l.front(e)
	return e.v, true
}

func (l *lru[K, V]) put(k K, v V) {
	if e, ok := l.m[k]; ok {
		e.v = v
		l.unlink(e)
		l.front(e)
		return
	}
	if len(l.m) >= l.cap && l.tail != nil {
		old := l.tail
		l.unlink(old)
		delete(l.m, old.k)
	}
	e := &lruEntry[K, V]{k: k, v: v}
	l.m[k] = e
	l.front(e)
}

// hpkeOpen opens one HPKE base-mode message (the first of its context).
func hpkeOpen(k hpke.PrivateKey, kdf hpke.KDF, aead hpke.AEAD, enc, info, ad, ct []byte) ([]byte, error) {
	r, err := hpke.NewRecipient(enc, k, kdf, aead, info)
	if err != nil {
		return nil, err
	}
	return r.Open(ad, ct)
}

// hpkeExport derives a secret from an HPKE base-mode context (RFC 9180
// section 5.3).
func hpkeExport(k hpke.PrivateKey, kdf hpke.KDF, aead hpke.AEAD, enc, info []byte, context string, n int) ([]byte, error) {
	r, err := hpke.NewRecipient(enc, k, kdf, aead, info)
	if err != nil {
		return nil, err
	}
	return r.Export(context, n)
}

// replayState is the saved form of the replay windows.
type replayState struct {
	Senders map[string]windowState `json:"senders"`
}

type windowState struct {
	Top  uint64   `json:"top"`
	Bits []uint64 `json:"bits"`
}

// SaveState writes the replay windows, so that a later Opener (another run
// of a command) refuses what this one opened.
func (o *Opener) SaveState(w io.Writer) error {
	o.mu.Lock()
	st := replayState{Senders: map[string]windowState{}}
	for k, e := range o.replay.m {
		st.Senders[hex.EncodeToString(k[:])] = windowState{Top: e.v.top, Bits: e.v.bits}
	}
	o.mu.Unlock()
	return json.NewEncoder(w).Encode(st)
}

// LoadState reads windows written by SaveState (windows of another size are
// ignored).
func (o *Opener) LoadState(r io.Reader) error {
	var st replayState
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return fmt.Errorf("seal: replay state: %w", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, ws := range st.Senders {
		b, err := hex.DecodeString(k)
		if err != nil || len(b) != 8 || len(ws.Bits) != (o.opts.Window+63)/64 {
			continue
		}
		o.replay.put([8]byte(b), &window{top: ws.Top, bits: ws.Bits, size: uint64(o.opts.Window)})
	}
	return nil
}

// frame checks what every reader of an envelope checks first: its length,
// its magic (both bytes wrong: not an envelope; one wrong, a flipped bit,
// fails the checksum as any other changed byte does), its CRC-32C and its
// version. It returns the envelope without its checksum.
func frame(env []byte) ([]byte, error) {
	if len(env) < headerLen+tagLen+crcLen || (env[0] != 'I' && env[1] != 'G') {
		return nil, ErrMalformed
	}
	body := env[:len(env)-crcLen]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(env[len(env)-crcLen:]) {
		return nil, ErrTampered
	}
	if env[2] != version {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, env[2])
	}
	return body, nil
}

// Header is an envelope's clear header, readable without a key.
type Header struct {
	Suite    Suite
	KeyID    [8]byte
	TopicTag [4]byte
	Sender   [8]byte
	Seq      uint64
	Time     time.Time
	Signed   bool
	Session  bool
}

// Inspect checks what can be checked without a key, as a gateway does on a
// sealed topic: the framing (as Open checks it), the suite and the flags. It
// returns ErrMalformed or ErrTampered otherwise.
func Inspect(env []byte) (*Header, error) {
	if _, err := frame(env); err != nil {
		return nil, err
	}
	s, flags := Suite(env[3]), env[4]
	if suiteNames[s] == "" || flags&^(flagSigned|flagSession|flagEnc) != 0 ||
		(flags&flagEnc != 0 && flags&flagSession == 0) || (s == AES256GCM && flags&flagSession != 0) {
		return nil, ErrMalformed
	}
	return &Header{Suite: s, KeyID: [8]byte(env[5:13]), TopicTag: [4]byte(env[13:17]), Sender: [8]byte(env[17:25]),
		Seq: binary.BigEndian.Uint64(env[25:33]), Time: time.UnixMilli(int64(binary.BigEndian.Uint64(env[33:41]))),
		Signed: flags&flagSigned != 0, Session: flags&flagSession != 0}, nil
}

// ForTopic reports whether the envelope was sealed for topic.
func (h *Header) ForTopic(topic string) bool { return h.TopicTag == topicTag(topic) }

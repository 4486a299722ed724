package seal_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/iomtguard/iomtguard/seal"
)

// A device group and its reader share one AES-256-GCM key: the smallest
// and fastest envelope.
func Example() {
	key, _ := seal.GenerateKey(seal.AES256GCM)
	sealer, _ := seal.NewSealer(key, seal.Options{})
	opener := seal.NewOpener(key, seal.OpenOptions{})

	env, _ := sealer.Seal("ward3/bed1/spo2", []byte(`{"spo2":97}`))
	reading, info, err := opener.Open("ward3/bed1/spo2", env)
	fmt.Println(string(reading), err, info.Overhead, "bytes of overhead")

	// The same envelope on another topic, or a second time, is refused.
	_, _, err = opener.Open("ward3/bed2/spo2", env)
	fmt.Println(errors.Is(err, seal.ErrWrongTopic))
	_, _, err = opener.Open("ward3/bed1/spo2", env)
	fmt.Println(errors.Is(err, seal.ErrReplayed))
	// Output:
	// {"spo2":97} <nil> 73 bytes of overhead
	// true
	// true
}

// Devices hold only the nurse station's public key (post-quantum hybrid
// here): a stolen device cannot read its neighbours' readings.
func ExampleNewSealer_publicKey() {
	station, _ := seal.GenerateKey(seal.MLKEM768X25519) // stays on the nurse station
	pub := station.Public().MarshalPEM()                // goes to the devices

	devKey, _ := seal.ParsePEM(pub)
	device, _ := seal.NewSealer(devKey, seal.Options{})
	env, _ := device.Seal("icu/bed7/pump/rate", []byte("12.5 ml/h"))

	reading, _, err := seal.NewOpener(station, seal.OpenOptions{}).Open("icu/bed7/pump/rate", env)
	fmt.Println(string(reading), err, len(env))
	// Output: 12.5 ml/h <nil> 1192
}

// A session pays the HPKE encapsulation (1,120 bytes with ML-KEM) once,
// then each reading costs 69 bytes of overhead; messages may be lost or reordered.
func ExampleOptions_session() {
	station, _ := seal.GenerateKey(seal.MLKEM768X25519)
	device, _ := seal.NewSealer(station.Public(), seal.Options{Session: true, RekeyEvery: 100})
	opener := seal.NewOpener(station, seal.OpenOptions{})

	var envs [][]byte
	for _, r := range []string{"72", "73", "71"} {
		env, _ := device.Seal("icu/bed2/hr", []byte(r))
		envs = append(envs, env)
	}
	for _, i := range []int{0, 2, 1} { // the third before the second
		reading, info, err := opener.Open("icu/bed2/hr", envs[i])
		fmt.Println(string(reading), info.Session, len(envs[i]), err)
	}
	// Output:
	// 72 true 1193 <nil>
	// 71 true 71 <nil>
	// 73 true 71 <nil>
}

// With many devices sealing for one reader, a signature tells which device
// sealed a reading; the reader accepts only the devices it knows.
func ExampleOpenOptions_signatures() {
	station, _ := seal.GenerateKey(seal.X25519)
	_, bed1, _ := ed25519.GenerateKey(rand.Reader)
	_, intruder, _ := ed25519.GenerateKey(rand.Reader)

	opener := seal.NewOpener(station, seal.OpenOptions{
		Verifiers:        []ed25519.PublicKey{bed1.Public().(ed25519.PublicKey)},
		RequireSignature: true,
	})
	for _, k := range []ed25519.PrivateKey{bed1, intruder} {
		s, _ := seal.NewSealer(station.Public(), seal.Options{Signer: k})
		env, _ := s.Seal("icu/bed1/ecg", []byte("sinus rhythm"))
		reading, _, err := opener.Open("icu/bed1/ecg", env)
		fmt.Printf("%q %v\n", reading, err)
	}
	// Output:
	// "sinus rhythm" <nil>
	// "" seal: signed by an unknown sender
}

// Inspect reads the clear header without a key, as a gateway does to check
// that a payload on a sealed topic is an envelope for that topic.
func ExampleInspect() {
	key, _ := seal.GenerateKey(seal.AES256GCM)
	s, _ := seal.NewSealer(key, seal.Options{})
	env, _ := s.Seal("ward3/bed1/spo2", []byte("97"))

	h, err := seal.Inspect(env)
	fmt.Println(h.Suite, h.Seq, h.ForTopic("ward3/bed1/spo2"), h.ForTopic("ward3/bed9/spo2"), err)
	_, err = seal.Inspect([]byte(`{"spo2":97} sent in clear, not sealed at all`))
	fmt.Println(err)
	// Output:
	// aes256gcm 1 true false <nil>
	// seal: not a sealed envelope
}

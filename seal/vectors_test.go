package seal

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha3"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type hpkeVector struct {
	KEM         uint16 `json:"kem_id"`
	KDF         uint16 `json:"kdf_id"`
	AEAD        uint16 `json:"aead_id"`
	Info        string `json:"info"`
	SkRm        string `json:"skRm"`
	PkRm        string `json:"pkRm"`
	Enc         string `json:"enc"`
	Encryptions []struct {
		Aad, Ct, Pt string
	} `json:"encryptions"`
	Exports []struct {
		Context string `json:"exporter_context"`
		L       int    `json:"L"`
		Value   string `json:"exported_value"`
	} `json:"exports"`
	AccExports string `json:"exports_accumulated"`
}

func loadVector(t *testing.T, name string) hpkeVector {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vector hpkeVector }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Vector
}

// testHPKEVector runs an RFC 9180 base-mode vector through this package's
// key parsing (NewPrivateKey, NewPublicKey) and its HPKE open and export
// paths (hpkeOpen, hpkeExport), as Open uses them.
func testHPKEVector(t *testing.T, suite Suite, v hpkeVector) {
	if suite.hpkeKEM().ID() != v.KEM {
		t.Fatalf("suite %s has KEM %04x, the vector %04x", suite, suite.hpkeKEM().ID(), v.KEM)
	}
	key, err := NewPrivateKey(suite, unhex(t, v.SkRm))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublicKey(suite, unhex(t, v.PkRm))
	if err != nil {
		t.Fatal(err)
	}
	if key.Public().ID() != pub.ID() || !bytes.Equal(key.Public().pub.Bytes(), unhex(t, v.PkRm)) {
		t.Fatal("the private key does not give the vector's public key")
	}
	kdf, err := hpke.NewKDF(v.KDF)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := hpke.NewAEAD(v.AEAD)
	if err != nil {
		t.Fatal(err)
	}
	enc, info := unhex(t, v.Enc), unhex(t, v.Info)
	e := v.Encryptions[0] // the first message of the context
	pt, err := hpkeOpen(key.priv, kdf, aead, enc, info, unhex(t, e.Aad), unhex(t, e.Ct))
	if err != nil || !bytes.Equal(pt, unhex(t, e.Pt)) {
		t.Fatalf("open: %v, %x", err, pt)
	}
	bad := unhex(t, e.Ct)
	bad[0] ^= 1
	if _, err := hpkeOpen(key.priv, kdf, aead, enc, info, unhex(t, e.Aad), bad); err == nil {
		t.Error("a changed ciphertext opened")
	}
	for _, x := range v.Exports {
		got, err := hpkeExport(key.priv, kdf, aead, enc, info, string(unhex(t, x.Context)), x.L)
		if err != nil || !bytes.Equal(got, unhex(t, x.Value)) {
			t.Errorf("export %q: %x, want %s (%v)", x.Context, got, x.Value, err)
		}
	}
	if v.AccExports != "" {
		// Go's condensed form: 1000 exports of length 0..999 with contexts
		// drawn from SHAKE128, hashed together with SHAKE128.
		source, sink := sha3.NewSHAKE128(), sha3.NewSHAKE128()
		for l := range 1000 {
			n := make([]byte, 1)
			source.Read(n)
			ctx := make([]byte, n[0])
			source.Read(ctx)
			got, err := hpkeExport(key.priv, kdf, aead, enc, info, string(ctx), l)
			if err != nil {
				t.Fatal(err)
			}
			sink.Write(got)
		}
		acc := make([]byte, 16)
		sink.Read(acc)
		if !bytes.Equal(acc, unhex(t, v.AccExports)) {
			t.Errorf("accumulated exports %x, want %s", acc, v.AccExports)
		}
	}
}

// TestRFC9180 covers the x25519 suite's KEM, KDF and AEAD exactly.
func TestRFC9180(t *testing.T) {
	v := loadVector(t, "rfc9180-x25519-aes256gcm.json")
	if v.KDF != hpkeKDF.ID() || v.AEAD != hpkeAEAD.ID() {
		t.Fatalf("the vector's KDF %04x and AEAD %04x are not the suite's %04x, %04x", v.KDF, v.AEAD, hpkeKDF.ID(), hpkeAEAD.ID())
	}
	testHPKEVector(t, X25519, v)
}

// TestHPKEPQ covers the mlkem768x25519 suite's KEM (decapsulation and key
// schedule) with draft-ietf-hpke-pq's vector, whose AEAD is ChaCha20Poly1305;
// the suite's AES-256-GCM is covered by TestRFC9180 and TestNISTGCM.
func TestHPKEPQ(t *testing.T) {
	testHPKEVector(t, MLKEM768X25519, loadVector(t, "hpke-pq-mlkem768x25519.json"))
}

// TestNISTGCM runs NIST CAVP vectors (gcmEncryptExtIV256.rsp, 96-bit IVs,
// 128-bit tags) through newGCM, the AES-256-GCM of the aes256gcm suite and
// of sessions.
func TestNISTGCM(t *testing.T) {
	for _, v := range []struct{ name, key, iv, aad, pt, ct, tag string }{
		{"PTlen=0 AADlen=0 Count=0", "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4", "516c33929df5a3284ff463d7", "", "", "", "bdc1ac884d332457a1d2664f168c76f0"},
		{"PTlen=128 AADlen=0 Count=0", "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22", "0d18e06c7c725ac9e362e1ce", "", "2db5168e932556f8089a0622981d017d", "fa4362189661d163fcd6a56d8bf0405a", "d636ac1bbedd5cc3ee727dc2ab4a9489"},
		{"PTlen=128 AADlen=128 Count=0", "92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b", "ac93a1a6145299bde902f21a", "1e0889016f67601c8ebea4943bc23ad6", "2d71bcfa914e4ac045b2aa60955fad24", "8995ae2e6df3dbf96fac7b7137bae67f", "eca5aa77d51d4a0a14d9c51e1da474ab"},
		{"PTlen=104 AADlen=160 Count=1", "97431e565e8370a4879de962746a2fd67eca868b1c8e51eece2c1f94f74af407", "17fb63066e2726d282ecc610", "78e7374da7c77be5938de8dd76cf0308618306a9", "e21629cc973fbe40176e621d9d", "80dbd469de480389ba6c2fca52", "4e284abb8b4f9f13c7497ae56df05fa5"},
		{"PTlen=408 AADlen=720 Count=2", "c277df045d0a1a3956958f271055c229d2634427b1d73e99d54920da69f72e01", "79e24f84bc77a21a6cb14ee2",
			"ca09282238d492029afbd30ea9b4aa9d448d77b4b41a791c35ebe3f8e5034ac71210117a843fae647cea020712c27e5c8f85acf933d5e28430c7770862d8dbb197cbbcfe49dd63f6aa05fbd13e32c459342698dfee5935c7c321",
			"5ca68d858cc30b1cb0514c4e9de98e1a1a835df401f69e9ec6f1bcb1158f09114dff551683b3827457f77e17a7097b1ea69eac",
			"5c5223c8eda59a8dc28b08e6c21482a46e5d84d32c7050bf144fc57f4e8094de133198da7b4b8398b167204aff837da15d9ab2", "378885950a4491bee3cd681d3c957b9a"},
	} {
		g := newGCM(unhex(t, v.key))
		got := g.Seal(nil, unhex(t, v.iv), unhex(t, v.pt), unhex(t, v.aad))
		want := append(unhex(t, v.ct), unhex(t, v.tag)...)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %x, want %x", v.name, got, want)
		}
		pt, err := g.Open(nil, unhex(t, v.iv), want, unhex(t, v.aad))
		if err != nil || !bytes.Equal(pt, unhex(t, v.pt)) {
			t.Errorf("%s: open %v", v.name, err)
		}
	}
}

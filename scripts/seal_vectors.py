#!/usr/bin/env python3
"""An independent reader of the iomtguard sealed envelope, written from
seal/SPEC.md alone, that checks itself against the published vectors.

Usage: seal_vectors.py [seal/testdata/vectors.json] [--hpke seal/testdata/rfc9180-x25519-aes256gcm.json]

It implements suites 1 (aes256gcm) and 2 (x25519: HPKE base mode, written out
here from RFC 9180 on top of X25519, HKDF and AES-GCM primitives), one-shot
envelopes, sessions, Ed25519 signatures, the checks of SPEC.md section 7 in
their order, and the replay window. Its HPKE is first checked against the
RFC 9180 test vector. Suite 3 (ML-KEM-768 + X25519) is skipped: the Python
cryptography package Debian ships has no ML-KEM.

Needs python3-cryptography. Exit status 0 when every step of every supported
case gives the plaintext or the error the vectors name.
"""
import argparse
import hashlib
import hmac
import json
import struct
import sys

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization

# --- CRC-32C (Castagnoli), reflected, polynomial 0x82F63B78 ---------------
_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _T.append(_c)


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# --- HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM --
KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0002


def extract(salt, ikm):
    return hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()


def expand(prk, info, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


def labeled_extract(suite_id, salt, label, ikm):
    return extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id, prk, label, info, n):
    return expand(prk, struct.pack(">H", n) + b"HPKE-v1" + suite_id + label + info, n)


class HPKEContext:
    def __init__(self, shared_secret, info):
        sid = b"HPKE" + struct.pack(">HHH", KEM_ID, KDF_ID, AEAD_ID)
        psk_id_hash = labeled_extract(sid, b"", b"psk_id_hash", b"")
        info_hash = labeled_extract(sid, b"", b"info_hash", info)
        ctx = b"\x00" + psk_id_hash + info_hash
        secret = labeled_extract(sid, shared_secret, b"secret", b"")
        self.key = labeled_expand(sid, secret, b"key", ctx, 32)
        self.base_nonce = labeled_expand(sid, secret, b"base_nonce", ctx, 12)
        self.exporter = labeled_expand(sid, secret, b"exp", ctx, 32)
        self.sid = sid
        self.seq = 0

    def open(self, aad, ct):
        nonce = bytes(a ^ b for a, b in zip(self.base_nonce, self.seq.to_bytes(12, "big")))
        pt = AESGCM(self.key).decrypt(nonce, ct, aad)
        self.seq += 1
        return pt

    def export(self, context, n):
        return labeled_expand(self.sid, self.exporter, b"sec", context, n)


def setup_base_r(enc, sk_bytes, info):
    kem_sid = b"KEM" + struct.pack(">H", KEM_ID)
    sk = X25519PrivateKey.from_private_bytes(sk_bytes)
    pkrm = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    dh = sk.exchange(X25519PublicKey.from_public_bytes(enc))
    eae_prk = labeled_extract(kem_sid, b"", b"eae_prk", dh)
    shared = labeled_expand(kem_sid, eae_prk, b"shared_secret", enc + pkrm, 32)
    return HPKEContext(shared, info)


def check_rfc9180(path):
    v = json.load(open(path))["vector"]
    u = bytes.fromhex
    ctx = setup_base_r(u(v["enc"]), u(v["skRm"]), u(v["info"]))
    e = v["encryptions"][0]
    assert ctx.open(u(e["aad"]), u(e["ct"])) == u(e["pt"]), "RFC 9180 open"
    for x in v.get("exports", []):
        got = ctx.export(u(x["exporter_context"]), x["L"])
        assert got == u(x["exported_value"]), "RFC 9180 export"
    if "exports_accumulated" in v:
        # Go's condensed form: 1000 exports of lengths 0..999, contexts read
        # from one SHAKE128 stream, all absorbed by another.
        src, pos, sink = hashlib.shake_128(b"").digest(300000), 0, hashlib.shake_128()
        for n in range(1000):
            ln = src[pos]
            ctx_bytes = src[pos + 1:pos + 1 + ln]
            pos += 1 + ln
            sink.update(ctx.export(ctx_bytes, n))
        assert sink.digest(16) == u(v["exports_accumulated"]), "RFC 9180 accumulated exports"


# --- the envelope (SPEC.md) -------------------------------------------------
PREFIX = b"iomtguard-seal-v1"
SUITES = {"aes256gcm": 1, "x25519": 2, "mlkem768x25519": 3}


class Refused(Exception):
    pass


def sha(b):
    return hashlib.sha256(b).digest()


def topic_aad(prefix, topic, data):
    t = topic.encode()
    return prefix + PREFIX + struct.pack(">H", len(t)) + t + data


class Window:
    def __init__(self, size=1024):
        self.size, self.top, self.seen = size, 0, set()

    def check(self, seq):
        if seq == 0:
            return False
        if seq > self.top:
            self.top = seq
            self.seen = {s for s in self.seen if self.top - s < self.size}
        elif self.top - seq >= self.size:
            return False
        if seq in self.seen:
            return False
        self.seen.add(seq)
        return True


class Reader:
    def __init__(self, suite, key, verify_keys, require_signature, max_age, max_skew):
        self.suite, self.key = suite, key
        if suite == 1:
            self.key_id = sha(b"iomtguard seal key" + bytes([1]) + key)[:8]
        else:
            pub = X25519PrivateKey.from_private_bytes(key).public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            self.key_id = sha(b"iomtguard seal key" + bytes([suite]) + pub)[:8]
        self.verifiers = {}
        for v in verify_keys:
            self.verifiers[sha(b"iomtguard seal signer" + v)[:8]] = v
        self.require = require_signature
        self.max_age, self.max_skew = max_age, max_skew
        self.sessions, self.windows = {}, {}

    def open(self, topic, env, now_ms):
        if len(env) < 61 or (env[0] != 0x49 and env[1] != 0x47):
            raise Refused("malformed")
        body = env[:-4]
        if crc32c(body) != struct.unpack(">I", env[-4:])[0]:
            raise Refused("tampered")
        if env[2] != 1:
            raise Refused("malformed")
        suite, flags = env[3], env[4]
        if suite != self.suite or env[5:13] != self.key_id:
            raise Refused("wrong_key")
        if env[13:17] != sha(topic.encode())[:4]:
            raise Refused("wrong_topic")
        if flags & ~0x07 or (flags & 0x04 and not flags & 0x02) or (suite == 1 and flags & 0x02):
            raise Refused("malformed")
        sender = env[17:25]
        seq, ms = struct.unpack(">QQ", env[25:41])
        if flags & 0x01:
            if len(body) < 41 + 64 + 16:
                raise Refused("malformed")
            if sender not in self.verifiers:
                raise Refused("unknown_sender")
            sig, body = body[-64:], body[:-64]
            try:
                Ed25519PublicKey.from_public_bytes(self.verifiers[sender]).verify(sig, topic_aad(b"sig:", topic, body))
            except InvalidSignature:
                raise Refused("tampered")
        elif self.require:
            raise Refused("unknown_sender")
        p = 41
        session = bool(flags & 0x02)
        if session:
            if len(body) < p + 8:
                raise Refused("malformed")
            sess_id = body[p:p + 8]
            p += 8
        enc = None
        if suite != 1 and (not session or flags & 0x04):
            if len(body) < p + 2:
                raise Refused("malformed")
            n = struct.unpack(">H", body[p:p + 2])[0]
            if len(body) < p + 2 + n:
                raise Refused("malformed")
            enc = body[p + 2:p + 2 + n]
            p += 2 + n
        nonce = None
        if suite == 1:
            if len(body) < p + 12:
                raise Refused("malformed")
            nonce = body[p:p + 12]
            p += 12
        elif session:
            nonce = b"\0\0\0\0" + struct.pack(">Q", seq)
        if len(body) - p < 16:
            raise Refused("malformed")
        aad, ct = topic_aad(b"", topic, body[:p]), body[p:]
        info = PREFIX + bytes([suite])
        try:
            if suite == 1:
                pt = AESGCM(self.key).decrypt(nonce, ct, aad)
            elif session:
                if enc is not None:
                    try:
                        k = setup_base_r(enc, self.key, info).export(b"iomtguard-seal-v1 session key", 32)
                    except ValueError:
                        raise Refused("tampered")
                else:
                    if sess_id not in self.sessions:
                        raise Refused("unknown_session")
                    k = self.sessions[sess_id]
                pt = AESGCM(k).decrypt(nonce, ct, aad)
                if enc is not None:
                    self.sessions[sess_id] = k
            else:
                try:
                    pt = setup_base_r(enc, self.key, info).open(aad, ct)
                except ValueError:
                    raise Refused("tampered")
        except InvalidTag:
            raise Refused("tampered")
        if self.max_age > 0 and (ms < now_ms - self.max_age or ms > now_ms + self.max_skew):
            raise Refused("expired")
        w = self.windows.setdefault(sender, Window())
        if not w.check(seq):
            raise Refused("replayed")
        return pt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("vectors", nargs="?", default="seal/testdata/vectors.json")
    ap.add_argument("--hpke", default="seal/testdata/rfc9180-x25519-aes256gcm.json")
    a = ap.parse_args()
    check_rfc9180(a.hpke)
    vf = json.load(open(a.vectors))
    cases = steps = skipped = failed = 0
    for c in vf["cases"]:
        suite = SUITES[c["suite"]]
        if suite == 3:
            skipped += 1
            continue
        cases += 1
        r = Reader(suite, bytes.fromhex(c["key"]), [bytes.fromhex(v) for v in c.get("verify_keys", [])],
                   c.get("require_signature", False), c["max_age_ms"], c["max_skew_ms"])
        if r.key_id.hex() != c["key_id"]:
            print(f"{c['name']}: key ID {r.key_id.hex()}, vectors say {c['key_id']}")
            failed += 1
            continue
        for i, st in enumerate(c["steps"]):
            steps += 1
            topic = st.get("topic") or c["topic"]
            now = st.get("now_ms") or c["now_ms"]
            try:
                got, err = r.open(topic, bytes.fromhex(st["envelope"]), now), None
            except Refused as e:
                got, err = None, str(e)
            want = st.get("error") or None
            if err != want or (want is None and got != bytes.fromhex(st.get("plaintext", ""))):
                print(f"{c['name']}, step {i + 1} ({st['note']}): got {err or got!r}, want {want or st.get('plaintext')}")
                failed += 1
    print(f"python reader: RFC 9180 vector ok; {cases} cases, {steps} steps, {failed} failures "
          f"({skipped} ML-KEM cases skipped)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

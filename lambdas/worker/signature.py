"""Verifying Travis's webhook signature: RSA PKCS#1 v1.5 with SHA-1, in plain Python.

travis-tasks signs the `payload` form field with the Travis installation's private key and sends
the Base64 signature in the `Signature` header; the public key is served by the endpoint's legacy
`/config` (shared/reference/travis-api-v3.md). Verification needs only the public key and modular
exponentiation, so no compiled crypto library goes into the Lambda layer: a public key and a
signature are public, there is no secret to protect from timing, and the comparison is constant
time anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

# DER prefix of a DigestInfo with SHA-1 (RFC 8017, section 9.2, note 1).
_SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")
_RSA_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1 rsaEncryption
_PEM = re.compile(r"-----BEGIN (RSA )?PUBLIC KEY-----(.+?)-----END (RSA )?PUBLIC KEY-----", re.S)


class KeyFormatError(ValueError):
    """The public key is not an RSA public key in PEM form."""


def public_key(pem: str) -> tuple[int, int]:
    """(modulus, exponent) of a PEM public key (SubjectPublicKeyInfo or PKCS#1)."""
    match = _PEM.search(pem.replace("\\n", "\n"))
    if match is None:
        raise KeyFormatError("no PEM public key")
    der = base64.b64decode("".join(match.group(2).split()))
    if match.group(1):  # -----BEGIN RSA PUBLIC KEY-----: RSAPublicKey directly
        return _rsa_public_key(der)
    tag, spki, _ = _read(der, 0)
    _expect(tag, 0x30)
    tag, algorithm, rest = _read(spki, 0)
    _expect(tag, 0x30)
    tag, oid, _ = _read(algorithm, 0)
    if tag != 0x06 or oid != _RSA_OID:
        raise KeyFormatError("not an RSA key")
    tag, bits, _ = _read(spki, rest)
    _expect(tag, 0x03)
    if not bits or bits[0] != 0:
        raise KeyFormatError("malformed key bits")
    return _rsa_public_key(bits[1:])


def verify(payload: bytes, signature_b64: str, key: tuple[int, int]) -> bool:
    """True when `signature_b64` is a valid RSA-SHA1 PKCS#1 v1.5 signature of `payload`."""
    modulus, exponent = key
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        return False
    size = (modulus.bit_length() + 7) // 8
    value = int.from_bytes(signature, "big")
    if len(signature) != size or value >= modulus:
        return False
    decoded = pow(value, exponent, modulus).to_bytes(size, "big")
    digest = _SHA1_DIGEST_INFO + hashlib.sha1(payload).digest()  # noqa: S324 - Travis's scheme
    padding = size - len(digest) - 3
    if padding < 8:
        return False
    expected = b"\x00\x01" + b"\xff" * padding + b"\x00" + digest
    return hmac.compare_digest(decoded, expected)


def _rsa_public_key(der: bytes) -> tuple[int, int]:
    tag, body, _ = _read(der, 0)
    _expect(tag, 0x30)
    tag, modulus, offset = _read(body, 0)
    _expect(tag, 0x02)
    tag, exponent, _ = _read(body, offset)
    _expect(tag, 0x02)
    return int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big")


def _read(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """One DER element at `offset`: (tag, content, offset after it)."""
    if offset + 2 > len(data):
        raise KeyFormatError("truncated key")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise KeyFormatError("malformed key length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if offset + length > len(data):
        raise KeyFormatError("truncated key")
    return tag, data[offset : offset + length], offset + length


def _expect(tag: int, wanted: int) -> None:
    if tag != wanted:
        raise KeyFormatError("unexpected key structure")

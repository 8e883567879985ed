"""Travis's webhook signature (RSA PKCS#1 v1.5, SHA-1) verified in plain Python, cross-checked with
the `cryptography` package signing as travis-tasks does."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from worker.signature import KeyFormatError, public_key, verify

PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey, fmt: serialization.PublicFormat) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM, fmt).decode()


def sign(key: rsa.RSAPrivateKey, payload: bytes) -> str:
    signed = key.sign(payload, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - Travis signs so
    return base64.b64encode(signed).decode()


PAYLOAD = b'{"id": 900001, "state": "passed", "number": "42"}'


@pytest.mark.parametrize(
    "fmt",
    [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1],
)
def test_a_travis_signature_verifies(fmt: serialization.PublicFormat) -> None:
    key = public_key(pem(PRIVATE, fmt))
    assert key == (PRIVATE.public_key().public_numbers().n, 65537)
    assert verify(PAYLOAD, sign(PRIVATE, PAYLOAD), key)


def test_a_changed_payload_or_another_key_does_not() -> None:
    key = public_key(pem(PRIVATE, serialization.PublicFormat.SubjectPublicKeyInfo))
    signature = sign(PRIVATE, PAYLOAD)
    assert not verify(PAYLOAD.replace(b"passed", b"failed"), signature, key)
    assert not verify(PAYLOAD, sign(OTHER, PAYLOAD), key)


@pytest.mark.parametrize("signature", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_garbage_signatures_are_refused(signature: str) -> None:
    key = public_key(pem(PRIVATE, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert not verify(PAYLOAD, signature, key)


def test_a_pem_with_escaped_newlines_reads_as_travis_config_serves_it() -> None:
    text = pem(PRIVATE, serialization.PublicFormat.SubjectPublicKeyInfo).replace("\n", "\\n")
    assert public_key(text)[1] == 65537


@pytest.mark.parametrize("text", ["", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"])
def test_what_is_not_a_key_is_refused(text: str) -> None:
    with pytest.raises((KeyFormatError, ValueError)):
        public_key(text)

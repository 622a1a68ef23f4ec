"""SMART Backend Services keys: the pair the app generates for a connection, and the public JWKS
the EHR registers (it fetches the URL to verify our signed client assertions).

The private key never leaves the app (encrypted at rest on the connection, never shown); the key
id is the RFC 7638 thumbprint of the public key, so a rotation changes it and an EHR can tell the
keys apart while both are registered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048
ALGORITHM = "RS384"  # what the SMART Backend Services profile requires of RSA assertions

# SMART v1 (`system/Patient.read`) and v2 (`system/Patient.rs`) system scopes.
SCOPE_RE = re.compile(r"system/(\*|[A-Z][A-Za-z]{1,63})\.(read|\*|[cruds]{1,5})")


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _public_numbers(private_key_pem: str) -> rsa.RSAPublicNumbers:
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("The connection's key is not an RSA key.")
    return key.public_key().public_numbers()


def thumbprint(numbers: rsa.RSAPublicNumbers) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def key_pair_generate() -> tuple[str, str]:
    """A new RSA key: (private key PEM, key id)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, thumbprint(key.public_key().public_numbers())


def public_jwks(private_key_pem: str, key_id: str) -> dict[str, Any]:
    """The JWK Set an EHR registers: the public half only."""
    numbers = _public_numbers(private_key_pem)
    jwk = {
        "kty": "RSA",
        "kid": key_id or thumbprint(numbers),
        "use": "sig",
        "alg": ALGORITHM,
        "key_ops": ["verify"],
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }
    return {"keys": [jwk]}


def scope_problems(scope: str) -> list[str]:
    """The scopes of a space-separated list that are not SMART system scopes."""
    return [item for item in scope.split() if not SCOPE_RE.fullmatch(item)]

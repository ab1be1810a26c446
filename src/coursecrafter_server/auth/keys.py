"""The RS256 signing key: loaded from COURSECRAFTER_JWT_PRIVATE_KEY_FILE or generated into HOME."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from coursecrafter_server.secrets_files import load_or_create


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str
    generated: bool

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, object]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.public_key))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def derived_secret(self, purpose: bytes) -> bytes:
        """An HMAC key for one purpose (a cookie's signature), derived from this key: every server
        of a deployment derives the same one, and a new key (a compromise) invalidates them all."""
        der = self.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return hmac.new(der, purpose, hashlib.sha256).digest()


def _generate_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: a stable `kid` that changes when the key does."""
    jwk = json.loads(RSAAlgorithm.to_jwk(public_key))
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def load_signing_key(configured: Path | None, home: Path) -> SigningKey:
    if configured is not None:
        pem = configured.read_bytes()
        generated = False
    else:
        pem = load_or_create(home / "jwt_private_key.pem", _generate_pem)
        generated = True
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("COURSECRAFTER_JWT_PRIVATE_KEY_FILE must hold an RSA private key (PEM)")
    return SigningKey(private_key=key, kid=_thumbprint(key.public_key()), generated=generated)

"""A security key in software, enough to drive the console's WebAuthn views without a browser: it makes
"none"-attestation credentials (P-256) and signs assertions with a counter that goes up, as a real key
does. The browser tests use Chromium's virtual authenticator instead; this one exercises the server's
checks (challenge, origin, counter) quickly, on both databases."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from hashlib import sha256

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import bytes_to_base64url

FLAG_USER_PRESENT = 0x01
FLAG_ATTESTED_DATA = 0x40


def _b64(data: bytes) -> str:
    return bytes_to_base64url(data)


@dataclass
class SoftAuthenticator:
    origin: str
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    sign_count: int = 0
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def _cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict, origin: str | None = None) -> dict:
        """What navigator.credentials.create() would return, as webauthn.js sends it."""
        auth_data = (sha256(options["rp"]["id"].encode()).digest() + bytes([FLAG_USER_PRESENT | FLAG_ATTESTED_DATA])
                     + self.sign_count.to_bytes(4, "big") + bytes(16) + len(self.credential_id).to_bytes(2, "big")
                     + self.credential_id + self._cose_public_key())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": _b64(self.credential_id), "rawId": _b64(self.credential_id), "type": "public-key",
                "clientExtensionResults": {},
                "response": {"clientDataJSON": _b64(self._client_data("webauthn.create", options["challenge"], origin)),
                             "attestationObject": _b64(attestation), "transports": ["usb"]}}

    def get(self, options: dict, origin: str | None = None, *, count_up: bool = True) -> dict:
        """What navigator.credentials.get() would return (the counter goes up unless told otherwise)."""
        if count_up:
            self.sign_count += 1
        auth_data = sha256(options["rpId"].encode()).digest() + bytes([FLAG_USER_PRESENT]) + self.sign_count.to_bytes(4, "big")
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": _b64(self.credential_id), "rawId": _b64(self.credential_id), "type": "public-key",
                "clientExtensionResults": {},
                "response": {"clientDataJSON": _b64(client_data), "authenticatorData": _b64(auth_data),
                             "signature": _b64(signature), "userHandle": None}}

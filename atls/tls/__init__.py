"""Attested TLS transport: a sans-I/O engine (:mod:`atls.tls.engine`) and its trio
(:mod:`atls.tls.trio`) and blocking-socket (:mod:`atls.tls.sync`) drivers."""

from atls.tls._credentials import AttestedCredentials, Credential, PlainCredentials
from atls.tls._sni import decode_nonce_sni, encode_nonce_sni

__all__ = [
    "AttestedCredentials",
    "Credential",
    "PlainCredentials",
    "decode_nonce_sni",
    "encode_nonce_sni",
]

"""A simulated AMD SEV-SNP key hierarchy that signs real-format attestation reports.

:class:`FakeAmd` holds, for one product (Milan, Genoa or Turin):

* a fake ARK (RSA-2048, self-signed; subject CN ``ARK-<product>``, O = the simulated marker,
  OU = ``amd``), the only thing a verifier has to trust (:meth:`FakeAmd.trust_store`);
* an ASK (``SEV-<product>``) or, with ``signing_key="vlek"``, an ASVK (``SEV-VLEK-<product>``),
  RSA-2048, issued by the ARK;
* a VCEK (``SEV-VCEK``, serial number 0 like AMD's, P-384, with the KDS TCB extensions and
  the hwID of the fake chip) or a VLEK (``SEV-VLEK``, with a cspID, no hwID);
* CRLs issued by the ARK (and, on request, by the ASK).

Every certificate and CRL is signed like AMD's: RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48.
They are built with asn1crypto, because ``cryptography`` refuses to build a certificate with
serial number 0.

:meth:`FakeAmd.report` makes a 1184-byte ATTESTATION_REPORT (version 2, 3 or 5) signed by the
VCEK/VLEK; :meth:`FakeAmd.collateral` returns the VCEK/VLEK, ASK/ASVK, ARK and CRL.

Everything is deterministic: keys derive from ``seed`` (RSA primes from a SHA-256 stream, the
P-384 key from a hash), PSS salts and ECDSA nonces too (RFC 6979), so two processes with the
same seed build byte-identical hierarchies and a client in one trusts a server in the other.
RSA keys are generated lazily and cached per (seed, product, role) for the whole process.

Knobs for negative cases:

* ``report(wrong_signer=True)`` - signed by a key that is not the VCEK's;
* ``report(debug=True)`` - guest policy DEBUG bit; ``migrate_ma=``, ``smt=``, ``policy=``;
* ``report(chip_id=...)`` / ``collateral(vcek_chip_id=...)`` - hwID mismatch;
* ``report(reported_tcb=...)`` / ``collateral(vcek_tcb=...)`` - TCB mismatch;
* ``report(cpuid=(family, model, stepping))`` - a CPU of another product;
* ``collateral(expired_vcek=True)`` - a VCEK whose validity ended before :data:`DEFAULT_AT`;
* ``collateral(wrong_ask=True)`` - an ASK with the right name but another key;
* ``collateral(revoke="ask")`` / ``revoke="vcek"`` - revoked by the ARK's / the ASK's CRL;
* ``collateral(crl=False)``, ``collateral(crl_expired=True)``, ``include_ask=False``,
  ``include_vcek=False``, ``include_ark=False``.

Nothing here is trusted unless a trust store explicitly allows simulated roots.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from asn1crypto import algos as _algos
from asn1crypto import core as _core
from asn1crypto import crl as _crl
from asn1crypto import keys as _keys
from asn1crypto import x509 as _x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from atls._bytes import Writer
from atls.collateral._bundle import Collateral
from atls.trust import TrustStore
from atls.trust._store import SIMULATED_MARKER

__all__ = ["DEFAULT_AT", "DEFAULT_SEED", "DEFAULT_TCB", "FakeAmd"]

#: A verification time inside every default validity window of the fake hierarchy.
DEFAULT_AT = datetime(2025, 6, 1, tzinfo=UTC)
DEFAULT_SEED = b"atls.testing.snp/v1"
_ROOT_NOT_BEFORE = datetime(2023, 1, 1, tzinfo=UTC)
_NOT_AFTER = datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)
_VEK_NOT_BEFORE = datetime(2024, 1, 1, tzinfo=UTC)
_EXPIRED_VEK = (datetime(2017, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
_CRL_THIS_UPDATE = datetime(2024, 1, 1, tzinfo=UTC)
_EXPIRED_CRL_NEXT_UPDATE = datetime(2024, 6, 1, tzinfo=UTC)

Product = Literal["Milan", "Genoa", "Turin"]
_PRODUCTS = ("Milan", "Genoa", "Turin")

#: Realistic REPORTED_TCB values per product (AMD's names: bootloader, tee, snp, microcode,
#: fmc on Turin).
DEFAULT_TCB: dict[str, dict[str, int]] = {
    "Milan": {"bootloader": 4, "tee": 0, "snp": 23, "microcode": 213},
    "Genoa": {"bootloader": 10, "tee": 0, "snp": 23, "microcode": 84},
    "Turin": {"fmc": 1, "bootloader": 1, "tee": 1, "snp": 4, "microcode": 81},
}
# CPUID family, model, stepping per product (as in the report's CPUID_* fields).
_CPUID = {"Milan": (0x19, 0x01, 0x01), "Genoa": (0x19, 0x11, 0x01), "Turin": (0x1A, 0x02, 0x00)}
_VCEK_PRODUCT_NAME = {"Milan": "Milan-B0", "Genoa": "Genoa", "Turin": "Turin"}
_AMD = "1.3.6.1.4.1.3704.1"
_SPL_OIDS = {"bootloader": 1, "tee": 2, "snp": 3, "microcode": 8, "fmc": 9}
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
_P384_ORDER = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
    16,
)

# --- deterministic keys -----------------------------------------------------------------------

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]
_MR_BASES = _SMALL_PRIMES[:4]  # OpenSSL checks the primes again when the key is built
#: (label -> (prime - start) / 2) for DEFAULT_SEED; see :func:`_prime`.
_PRIME_HINTS: dict[str, int] = {
    "milan/ark/p": 170,
    "milan/ark/q": 3,
    "milan/ask/p": 262,
    "milan/ask/q": 204,
    "milan/asvk/p": 11,
    "milan/asvk/q": 491,
    "milan/wrong-vcek/p": 116,
    "milan/wrong-vcek/q": 408,
    "milan/wrong-vlek/p": 35,
    "milan/wrong-vlek/q": 47,
    "genoa/ark/p": 179,
    "genoa/ark/q": 951,
    "genoa/ask/p": 438,
    "genoa/ask/q": 224,
    "genoa/asvk/p": 826,
    "genoa/asvk/q": 249,
    "genoa/wrong-vcek/p": 292,
    "genoa/wrong-vcek/q": 210,
    "genoa/wrong-vlek/p": 323,
    "genoa/wrong-vlek/q": 25,
    "turin/ark/p": 1581,
    "turin/ark/q": 57,
    "turin/ask/p": 54,
    "turin/ask/q": 356,
    "turin/asvk/p": 185,
    "turin/asvk/q": 397,
    "turin/wrong-vcek/p": 128,
    "turin/wrong-vcek/q": 89,
    "turin/wrong-vlek/p": 620,
    "turin/wrong-vlek/q": 332,
}
_KEY_LOCK = threading.Lock()
_RSA_KEYS: dict[tuple[bytes, str], rsa.RSAPrivateKey] = {}
# Certificates of hierarchies already built in this process (they are deterministic).
_BUILT: dict[tuple[Any, ...], tuple[bytes, bytes, bytes]] = {}


def _stream(seed: bytes, label: str, n: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(seed + b"\0" + label.encode() + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:n]


def _probable_prime(n: int) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime_start(seed: bytes, label: str, bits: int) -> int:
    start = int.from_bytes(_stream(seed, label, bits // 8), "big")
    return start | (3 << (bits - 2)) | 1  # top two bits set: the product has 2*bits bits


def _prime(seed: bytes, label: str, bits: int) -> int:
    """The first probable prime at or after a seed-derived odd ``bits``-bit start.

    The search costs about a second per key in pure Python, so for the default seed the
    distance to the prime is remembered in :data:`_PRIME_HINTS` (and checked).
    """
    start = _prime_start(seed, label, bits)
    hint = _PRIME_HINTS.get(label) if seed == DEFAULT_SEED else None
    if hint is not None:
        p = start + 2 * hint
        if p % 65537 != 1 and pow(2, p - 1, p) == 1:
            return p
    p = start
    while True:
        if p % 65537 != 1 and _probable_prime(p):
            return p
        p += 2


def _rsa_key(seed: bytes, label: str) -> rsa.RSAPrivateKey:
    """A deterministic RSA-2048 key (cached for the process)."""
    with _KEY_LOCK:
        k = _RSA_KEYS.get((seed, label))
        if k is not None:
            return k
    e = 65537
    p = _prime(seed, label + "/p", 1024)
    q = _prime(seed, label + "/q", 1024)
    if p == q:  # pragma: no cover - astronomically unlikely
        raise ValueError("degenerate key")
    phi = (p - 1) * (q - 1)
    d = pow(e, -1, phi)
    key = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    ).private_key()
    with _KEY_LOCK:
        return _RSA_KEYS.setdefault((seed, label), key)


def _ec_key(seed: bytes, label: str) -> ec.EllipticCurvePrivateKey:
    v = int.from_bytes(_stream(seed, label, 64), "big") % (_P384_ORDER - 1) + 1
    return ec.derive_private_key(v, ec.SECP384R1())


def _mgf1_sha384(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha384(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def _pss_sign(key: rsa.RSAPrivateKey, message: bytes, salt_seed: bytes) -> bytes:
    """RSASSA-PSS (RFC 8017 8.1.1, EMSA-PSS with SHA-384, MGF1-SHA-384, a 48-byte salt)
    with a salt derived from ``salt_seed`` and the message, so signatures are reproducible."""
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    mod_bits = n.bit_length()
    em_bits = mod_bits - 1
    em_len = (em_bits + 7) // 8
    h_len = s_len = 48
    m_hash = hashlib.sha384(message).digest()
    salt = hashlib.sha384(b"pss-salt" + salt_seed + m_hash).digest()[:s_len]
    h = hashlib.sha384(bytes(8) + m_hash + salt).digest()
    db = bytes(em_len - s_len - h_len - 2) + b"\x01" + salt
    masked = bytearray(a ^ b for a, b in zip(db, _mgf1_sha384(h, em_len - h_len - 1), strict=True))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    em = int.from_bytes(bytes(masked) + h + b"\xbc", "big")
    # RSA private operation with the CRT.
    p, q = numbers.p, numbers.q
    m1 = pow(em, numbers.dmp1, p)
    m2 = pow(em, numbers.dmq1, q)
    s = m2 + q * ((numbers.iqmp * (m1 - m2)) % p)
    sig = s.to_bytes((mod_bits + 7) // 8, "big")
    # Self-check with the library's verifier (catches any slip in the encoding above).
    key.public_key().verify(sig, message, _PSS, hashes.SHA384())
    return sig


# --- DER building -------------------------------------------------------------------------------


def _pss_algorithm() -> _algos.SignedDigestAlgorithm:
    sha384 = {"algorithm": "sha384", "parameters": _core.Null()}
    return _algos.SignedDigestAlgorithm(
        {
            "algorithm": "rsassa_pss",
            "parameters": _algos.RSASSAPSSParams(
                {
                    "hash_algorithm": sha384,
                    "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": sha384},
                    "salt_length": 48,
                }
            ),
        }
    )


def _time(t: datetime) -> _x509.Time:
    return _x509.Time({"utc_time": t} if t.year < 2050 else {"general_time": t})


def _name(cn: str) -> _x509.Name:
    return _x509.Name.build(
        {
            "organization_name": SIMULATED_MARKER,
            "organizational_unit_name": "amd",
            "common_name": cn,
        }
    )


def _spki(public_key: Any) -> _keys.PublicKeyInfo:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _keys.PublicKeyInfo.load(der)


def _ext(oid: str, value: bytes | _core.Asn1Value, *, critical: bool = False) -> dict[str, Any]:
    return {"extn_id": oid, "critical": critical, "extn_value": value}


def _raw_ext(oid: str, raw: bytes) -> _x509.Extension:
    """An extension whose extnValue holds ``raw`` as is (AMD's VCEK extensions)."""
    e = _x509.Extension({"extn_id": oid, "critical": False, "extn_value": b""})
    e["extn_value"] = _core.ParsableOctetString(raw)
    return e


def _issue(
    *,
    subject: _x509.Name,
    issuer: _x509.Name,
    public_key: Any,
    signer: rsa.RSAPrivateKey,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    extensions: list[Any],
    salt_seed: bytes,
) -> bytes:
    alg = _pss_algorithm()
    tbs = _x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": alg,
            "issuer": issuer,
            "validity": {"not_before": _time(not_before), "not_after": _time(not_after)},
            "subject": subject,
            "subject_public_key_info": _spki(public_key),
            "extensions": extensions,
        }
    )
    tbs_der = tbs.dump()
    sig = _pss_sign(signer, tbs_der, salt_seed)
    cert = _x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": alg, "signature_value": sig}
    )
    return bytes(cert.dump())


def _ca_extensions(public_key: Any, *, crl_sign: bool) -> list[Any]:
    ski = hashlib.sha1(_spki(public_key)["public_key"].contents).digest()  # noqa: S324 - key id
    usage = {"key_cert_sign", "crl_sign"} if crl_sign else {"key_cert_sign"}
    return [
        _ext("key_identifier", _core.OctetString(ski)),
        _ext("basic_constraints", _x509.BasicConstraints({"ca": True}), critical=True),
        _ext("key_usage", _x509.KeyUsage(usage), critical=True),
    ]


def _tcb_map(product: str, tcb: Mapping[str, int]) -> dict[str, int]:
    names = ("fmc", "bootloader", "tee", "snp", "microcode")
    out = {k: int(tcb.get(k, 0)) for k in names if k != "fmc" or product == "Turin"}
    extra = set(tcb) - set(names)
    if extra or any(not 0 <= v <= 255 for v in out.values()):
        raise ValueError(f"TCB components are {', '.join(names)} with values 0..255")
    if product != "Turin" and tcb.get("fmc"):
        raise ValueError(f"a {product} TCB has no FMC component")
    return out


def _tcb_u64(product: str, tcb: Mapping[str, int] | int) -> int:
    if isinstance(tcb, int):
        if not 0 <= tcb < 1 << 64:
            raise ValueError("a raw TCB_VERSION is a u64")
        return tcb
    t = _tcb_map(product, tcb)
    b = bytearray(8)
    if product == "Turin":
        b[0], b[1], b[2], b[3], b[7] = t["fmc"], t["bootloader"], t["tee"], t["snp"], t["microcode"]
    else:
        b[0], b[1], b[6], b[7] = t["bootloader"], t["tee"], t["snp"], t["microcode"]
    return int.from_bytes(b, "little")


class FakeAmd:
    """A simulated AMD hierarchy for one product (see the module docstring for the knobs).

    ``chip_id`` (64 bytes; Turin: 8 significant bytes, the rest zero) and ``tcb`` (the
    REPORTED_TCB components) describe the fake platform; they go into the VCEK and are the
    defaults of :meth:`report`. Keys depend on ``seed`` and ``product`` only.
    """

    def __init__(
        self,
        product: Product = "Milan",
        *,
        signing_key: Literal["vcek", "vlek"] = "vcek",
        seed: bytes = DEFAULT_SEED,
        chip_id: bytes | None = None,
        tcb: Mapping[str, int] | None = None,
        csp_id: str = "CN=csp.simulated.atls.invalid",
    ) -> None:
        if product not in _PRODUCTS:
            raise ValueError(f"product must be one of {', '.join(_PRODUCTS)}")
        if signing_key not in ("vcek", "vlek"):
            raise ValueError("signing_key must be 'vcek' or 'vlek'")
        self.product: str = product
        self.signing_key: str = signing_key
        self.seed = seed
        self.csp_id = csp_id
        self.tcb: dict[str, int] = _tcb_map(product, tcb or DEFAULT_TCB[product])
        if chip_id is None:
            chip_id = hashlib.sha512(seed + b"/chip/" + product.encode()).digest()
            if product == "Turin":
                chip_id = chip_id[:8] + bytes(56)
        if len(chip_id) != 64:
            raise ValueError("chip_id is 64 bytes")
        self.chip_id = bytes(chip_id)
        self._lock = threading.Lock()
        self._cache: dict[Any, bytes] = {}
        vlek = signing_key == "vlek"
        p = product.lower()
        self.ark_name = _name(f"ARK-{product}")
        self.signer_cn = f"SEV-VLEK-{product}" if vlek else f"SEV-{product}"
        self.signer_name = _name(self.signer_cn)
        self.vek_cn = "SEV-VLEK" if vlek else "SEV-VCEK"
        self._ark_key = _rsa_key(seed, f"{p}/ark")
        self._ask_key = _rsa_key(seed, f"{p}/{'asvk' if vlek else 'ask'}")
        self.vek_key = _ec_key(seed, f"{p}/{signing_key}/{self.chip_id.hex()}")
        built_key = (
            seed,
            product,
            signing_key,
            self.chip_id,
            tuple(sorted(self.tcb.items())),
            csp_id,
        )
        with _KEY_LOCK:
            built = _BUILT.get(built_key)
        if built is None:
            ark_der = _issue(
                subject=self.ark_name,
                issuer=self.ark_name,
                public_key=self._ark_key.public_key(),
                signer=self._ark_key,
                serial=self._serial("ark"),
                not_before=_ROOT_NOT_BEFORE,
                not_after=_NOT_AFTER,
                extensions=_ca_extensions(self._ark_key.public_key(), crl_sign=True),
                salt_seed=seed,
            )
            built = (
                ark_der,
                self._signer_cert(self._ask_key),
                self._vek_cert(self.tcb, self.chip_id, _VEK_NOT_BEFORE, _NOT_AFTER),
            )
            with _KEY_LOCK:
                built = _BUILT.setdefault(built_key, built)
        self.ark_der, self.ask_der, self.vek_der = built

    # -- names and helpers ---------------------------------------------------------------

    def _serial(self, label: str) -> int:
        h = hashlib.sha256(self.seed + b"/serial/" + self.product.encode() + label.encode())
        return int.from_bytes(h.digest()[:8], "big") | 1

    @property
    def vcek_der(self) -> bytes:
        """The endorsement key certificate (a VLEK when ``signing_key="vlek"``)."""
        return self.vek_der

    @property
    def anchor_name(self) -> str:
        return f"simulated:ARK-{self.product}"

    def _signer_cert(self, key: rsa.RSAPrivateKey) -> bytes:
        return _issue(
            subject=self.signer_name,
            issuer=self.ark_name,
            public_key=key.public_key(),
            signer=self._ark_key,
            serial=self._serial("signer/" + self.signer_cn),
            not_before=_ROOT_NOT_BEFORE,
            not_after=_NOT_AFTER,
            extensions=_ca_extensions(key.public_key(), crl_sign=False),
            salt_seed=self.seed,
        )

    def _vek_cert(
        self, tcb: Mapping[str, int], hw_id: bytes, not_before: datetime, not_after: datetime
    ) -> bytes:
        t = _tcb_map(self.product, tcb)
        turin = self.product == "Turin"
        vlek = self.signing_key == "vlek"
        exts: list[Any] = [
            _raw_ext(f"{_AMD}.1", _core.Integer(1 if turin else 0).dump()),
            _raw_ext(
                f"{_AMD}.2",
                _core.IA5String(self.product if vlek else _VCEK_PRODUCT_NAME[self.product]).dump(),
            ),
        ]
        for name, v in t.items():
            exts.append(_raw_ext(f"{_AMD}.3.{_SPL_OIDS[name]}", _core.Integer(v).dump()))
        for n in (5, 6, 7) if turin else (4, 5, 6, 7):
            exts.append(_raw_ext(f"{_AMD}.3.{n}", _core.Integer(0).dump()))
        if vlek:
            exts.append(_raw_ext(f"{_AMD}.5", _core.IA5String(self.csp_id).dump()))
        else:
            # KDS puts the raw hwID bytes in extnValue (64 bytes; Turin: 8).
            exts.append(_raw_ext(f"{_AMD}.4", hw_id[:8] if turin else hw_id))
        return _issue(
            subject=_name(self.vek_cn),
            issuer=self.signer_name,
            public_key=self.vek_key.public_key(),
            signer=self._ask_key,
            serial=0,
            not_before=not_before,
            not_after=not_after,
            extensions=exts,
            salt_seed=self.seed,
        )

    def _cached(self, key: Any, make: Any) -> bytes:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        value: bytes = make()
        with self._lock:
            return self._cache.setdefault(key, value)

    def crl(
        self,
        *,
        issuer: Literal["ark", "ask"] = "ark",
        revoked: tuple[int, ...] = (),
        this_update: datetime = _CRL_THIS_UPDATE,
        next_update: datetime = _NOT_AFTER,
    ) -> bytes:
        """A DER CRL issued (RSASSA-PSS) by the ARK or by the ASK/ASVK, revoking ``revoked``."""

        def make() -> bytes:
            name = self.ark_name if issuer == "ark" else self.signer_name
            key = self._ark_key if issuer == "ark" else self._ask_key
            alg = _pss_algorithm()
            tbs: dict[str, Any] = {
                "version": "v2",
                "signature": alg,
                "issuer": name,
                "this_update": _time(this_update),
                "next_update": _time(next_update),
            }
            if revoked:
                tbs["revoked_certificates"] = [
                    {"user_certificate": s, "revocation_date": _time(this_update)} for s in revoked
                ]
            tbs_obj = _crl.TbsCertList(tbs)
            sig = _pss_sign(key, tbs_obj.dump(), self.seed)
            c = _crl.CertificateList(
                {"tbs_cert_list": tbs_obj, "signature_algorithm": alg, "signature": sig}
            )
            return bytes(c.dump())

        return self._cached(("crl", issuer, revoked, this_update, next_update), make)

    # -- trust and collateral --------------------------------------------------------------

    def trust_store(self) -> TrustStore:
        """A trust store (``allow_simulated=True``) holding only this hierarchy's fake ARK."""
        anchor = TrustStore.anchor_from_der(
            self.ark_der, source="atls.testing.snp", allow_simulated=True
        )
        return TrustStore([anchor], allow_simulated=True)

    def collateral(
        self,
        *,
        crl: bool = True,
        crl_expired: bool = False,
        revoke: Literal["ask", "vcek"] | None = None,
        expired_vcek: bool = False,
        vcek_tcb: Mapping[str, int] | None = None,
        vcek_chip_id: bytes | None = None,
        wrong_ask: bool = False,
        include_vcek: bool = True,
        include_ask: bool = True,
        include_ark: bool = True,
    ) -> Collateral:
        """The VCEK/VLEK, the ASK/ASVK, the ARK (as KDS and the extended report serve them)
        and the ARK's CRL, with the knobs of the module docstring applied."""
        certs: list[bytes] = []
        if include_vcek:
            if expired_vcek or vcek_tcb is not None or vcek_chip_id is not None:
                tcb = dict(vcek_tcb) if vcek_tcb is not None else self.tcb
                hw = vcek_chip_id if vcek_chip_id is not None else self.chip_id
                window = _EXPIRED_VEK if expired_vcek else (_VEK_NOT_BEFORE, _NOT_AFTER)
                certs.append(
                    self._cached(
                        ("vek", tuple(sorted(tcb.items())), hw, window),
                        lambda: self._vek_cert(tcb, hw, *window),
                    )
                )
            else:
                certs.append(self.vek_der)
        if include_ask:
            if wrong_ask:
                other = _rsa_key(self.seed, f"{self.product.lower()}/wrong-{self.signing_key}")
                certs.append(self._cached("wrong-ask", lambda: self._signer_cert(other)))
            else:
                certs.append(self.ask_der)
        if include_ark:
            certs.append(self.ark_der)
        crls: list[bytes] = []
        if crl or revoke == "ask":
            crls.append(
                self.crl(
                    revoked=(self._serial("signer/" + self.signer_cn),) if revoke == "ask" else (),
                    next_update=_EXPIRED_CRL_NEXT_UPDATE if crl_expired else _NOT_AFTER,
                )
            )
        if revoke == "vcek":
            crls.append(self.crl(issuer="ask", revoked=(0,)))
        return Collateral(tuple(certs), tuple(crls), (), ("atls.testing.snp",))

    # -- reports ---------------------------------------------------------------------------

    def report(
        self,
        report_data: bytes = bytes(64),
        *,
        version: int | None = None,
        guest_svn: int = 0,
        policy: int | None = None,
        debug: bool = False,
        smt: bool = True,
        migrate_ma: bool = False,
        family_id: bytes = bytes(16),
        image_id: bytes = bytes(16),
        vmpl: int = 0,
        measurement: bytes | None = None,
        host_data: bytes = bytes(32),
        id_key_digest: bytes = bytes(48),
        author_key_digest: bytes = bytes(48),
        author_key_en: bool = False,
        report_id: bytes | None = None,
        report_id_ma: bytes = b"\xff" * 32,
        reported_tcb: Mapping[str, int] | int | None = None,
        current_tcb: Mapping[str, int] | int | None = None,
        committed_tcb: Mapping[str, int] | int | None = None,
        launch_tcb: Mapping[str, int] | int | None = None,
        chip_id: bytes | None = None,
        platform_info: int = 0x1,
        cpuid: tuple[int, int, int] | None = None,
        firmware: tuple[int, int, int] = (1, 55, 40),
        launch_mit_vector: int = 0,
        current_mit_vector: int = 0,
        signing_key: Literal["vcek", "vlek", "none"] | None = None,
        mask_chip_key: bool = False,
        wrong_signer: bool = False,
    ) -> bytes:
        """A signed 1184-byte attestation report.

        ``report_data`` is zero-padded to 64 bytes. ``version`` defaults to 5 on Turin and
        3 elsewhere. ``policy`` defaults to SMT + the must-be-one bit 17; ``debug``, ``smt``
        and ``migrate_ma`` set their bits on top. TCB arguments take component dicts (or a
        raw u64); they default to the hierarchy's TCB. ``chip_id`` defaults to the fake
        chip's (zero for a VLEK hierarchy). ``signing_key`` overrides the SIGNING_KEY field
        (the report is still signed by this hierarchy's key); ``wrong_signer=True`` signs
        with an unrelated P-384 key.
        """
        if len(report_data) > 64:
            raise ValueError("report_data is at most 64 bytes")
        if version is None:
            version = 5 if self.product == "Turin" else 3
        if version not in (2, 3, 5):
            raise ValueError("report version 2, 3 or 5")
        pol = 0x30000 if policy is None else policy
        pol |= 1 << 17
        pol = pol | (1 << 16) if smt else pol & ~(1 << 16)
        if debug:
            pol |= 1 << 19
        if migrate_ma:
            pol |= 1 << 18
        if measurement is None:
            measurement = hashlib.sha384(b"atls simulated SNP guest").digest()
        if report_id is None:
            report_id = hashlib.sha256(self.seed + b"/report_id/" + self.chip_id).digest()
        if chip_id is None:
            chip_id = bytes(64) if self.signing_key == "vlek" else self.chip_id
        key_name = signing_key or self.signing_key
        key_code = {"vcek": 0, "vlek": 1, "none": 7}[key_name]
        tcb = self.tcb if reported_tcb is None else reported_tcb
        reported = _tcb_u64(self.product, tcb)

        def tcb_or(v: Mapping[str, int] | int | None) -> int:
            return reported if v is None else _tcb_u64(self.product, v)

        sizes = {
            "family_id": (family_id, 16),
            "image_id": (image_id, 16),
            "measurement": (measurement, 48),
            "host_data": (host_data, 32),
            "id_key_digest": (id_key_digest, 48),
            "author_key_digest": (author_key_digest, 48),
            "report_id": (report_id, 32),
            "report_id_ma": (report_id_ma, 32),
            "chip_id": (chip_id, 64),
        }
        for field, (value, size) in sizes.items():
            if len(value) != size:
                raise ValueError(f"{field} is {size} bytes")
        fam, mod, step = cpuid or _CPUID[self.product]
        w = Writer()
        w.u32(version).u32(guest_svn).u64(pol).raw(family_id).raw(image_id)
        w.u32(vmpl).u32(1).u64(tcb_or(current_tcb)).u64(platform_info)
        w.u32(int(author_key_en) | int(mask_chip_key) << 1 | key_code << 2).zeros(4)
        w.raw(report_data.ljust(64, b"\0")).raw(measurement).raw(host_data)
        w.raw(id_key_digest).raw(author_key_digest).raw(report_id).raw(report_id_ma)
        w.u64(reported)
        if version >= 3:
            w.u8(fam).u8(mod).u8(step).zeros(0x1A0 - 0x18B)
        else:
            w.zeros(0x1A0 - 0x188)
        w.raw(chip_id).u64(tcb_or(committed_tcb))
        major, minor, build = firmware
        w.u8(build).u8(minor).u8(major).zeros(1).u8(build).u8(minor).u8(major).zeros(1)
        w.u64(tcb_or(launch_tcb))
        if version >= 5:
            w.u64(launch_mit_vector).u64(current_mit_vector).zeros(0x2A0 - 0x208)
        else:
            w.zeros(0x2A0 - 0x1F8)
        signed = w.getvalue()
        assert len(signed) == 0x2A0
        signer = self.vek_key
        if wrong_signer:
            signer = _ec_key(self.seed, f"{self.product}/wrong-signer")
        der = signer.sign(signed, ec.ECDSA(hashes.SHA384(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(72, "little") + s.to_bytes(72, "little")
        return signed + sig + bytes(0x4A0 - 0x2A0 - len(sig))

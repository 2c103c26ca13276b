"""Download the vendor roots into a trust directory, accepting only pinned ones.

- Intel: the Intel SGX Root CA from Intel's certificate server.
- AMD: for each product (Milan, Genoa, Turin) the KDS ``vcek/v1/{product}/cert_chain``
  (ASK + ARK) and, by default, ``vlek/v1/{product}/cert_chain`` (ASVK + ARK).

Every downloaded root goes through :meth:`TrustStore.anchor_from_der` and must match the pin
named for its slot (a pinned Genoa ARK served at the Milan URL is refused too). The ASK and
ASVK are not anchors: they are kept beside their ARK (verifiers may use them as collateral)
only after their signature by that ARK verifies. Files are written atomically, with a
comment header naming the origin URL, the time and the SHA-256, which :func:`list_trust`
shows.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from atls.collateral._sniff import is_der_sequence, split_certificates
from atls.collateral.fetch._amd import PRODUCTS, amd_base, cert_chain_spec, norm_product
from atls.collateral.fetch._http import RetryPolicy, SyncTransport, TlsVerify
from atls.collateral.fetch._intel import INTEL_ROOT_CA_URL
from atls.collateral.fetch._x509 import CertInfo
from atls.errors import AtlsError, CollateralUnavailableError, ConfigurationError
from atls.trust._store import Anchor, TrustStore, default_trust_dir, fingerprint

__all__ = [
    "TrustFetchResult",
    "TrustListing",
    "fetch_trust_anchors",
    "list_trust",
]

_HEADER_KEYS = ("atls trust file", "source", "fetched", "sha256")


@dataclass(frozen=True)
class TrustFetchResult:
    """One downloaded file: a root (``anchor`` set) or an intermediate, or the error."""

    name: str
    url: str
    path: Path | None = None
    anchor: Anchor | None = None
    error: AtlsError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class TrustListing:
    """One certificate in a trust directory."""

    name: str
    vendor: str
    role: str  # "anchor" or "intermediate"
    subject: str
    sha256: str
    not_after: _dt.datetime
    file: Path
    origin: str | None
    fetched: str | None
    simulated: bool = False


def _pem_file(name: str, url: str, ders: Iterable[bytes], at: _dt.datetime) -> bytes:
    out = [f"# atls trust file: {name}\n# source: {url}\n# fetched: {at.isoformat()}\n"]
    for d in ders:
        out.append(f"# sha256: {fingerprint(d)}\n")
        pem = x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM)
        out.append(pem.decode("ascii"))
    return "".join(out).encode("ascii")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _expect_pin(anchor: Anchor, pin_name: str, url: str) -> None:
    if anchor.name != pin_name:
        raise ConfigurationError(
            f"{url} served the pinned root {anchor.name!r} where {pin_name!r} was expected",
            code="trust.wrong_root",
        )


def _check_issued_by(child_der: bytes, parent_der: bytes, what: str, url: str) -> None:
    try:
        child = x509.load_der_x509_certificate(child_der)
        parent = x509.load_der_x509_certificate(parent_der)
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError) as e:
        raise CollateralUnavailableError(
            f"{url}: the {what} is not signed by the pinned root ({e or type(e).__name__})",
            code="trust.chain",
        ) from e


def _intel(
    transport: SyncTransport, trust_dir: Path, url: str, at: _dt.datetime
) -> TrustFetchResult:
    name = "intel-sgx-root"
    try:
        res = transport.get(url, "Intel SGX Root CA")
        body = res.body
        ders = [body] if is_der_sequence(body) else split_certificates(body)
        if len(ders) != 1:
            raise CollateralUnavailableError(
                f"{url}: expected one certificate, found {len(ders)}", code="collateral.malformed"
            )
        # 1. The certificate must be the pinned Intel SGX Root CA, byte for byte.
        anchor = TrustStore.anchor_from_der(ders[0], source=url)
        _expect_pin(anchor, name, url)
        path = trust_dir / f"{name}.pem"
        _write_atomic(path, _pem_file(name, url, ders, at))
        return TrustFetchResult(name, url, path, anchor)
    except AtlsError as e:
        return TrustFetchResult(name, url, error=e)


def _amd(
    transport: SyncTransport,
    trust_dir: Path,
    base: str,
    product: str,
    at: _dt.datetime,
    include_vlek: bool,
) -> list[TrustFetchResult]:
    p = product.lower()
    pin_name = f"amd-ark-{p}"
    out: list[TrustFetchResult] = []
    spec = cert_chain_spec(base, product=product, key="vcek")
    try:
        res = transport.get(spec.url, spec.what)
        # 1. Structure: exactly ASK then ARK, with the product's names (KDS cert_chain).
        ask, ark = spec.parse(res).collateral.certificates
        # 2. The ARK must be the pinned root of this product.
        anchor = TrustStore.anchor_from_der(ark, source=spec.url)
        _expect_pin(anchor, pin_name, spec.url)
        # 3. The ASK must be signed by that ARK before it is kept.
        _check_issued_by(ask, ark, "ASK", spec.url)
    except AtlsError as e:
        return [TrustFetchResult(pin_name, spec.url, error=e)]
    ark_path = trust_dir / f"{pin_name}.pem"
    _write_atomic(ark_path, _pem_file(pin_name, spec.url, [ark], at))
    out.append(TrustFetchResult(pin_name, spec.url, ark_path, anchor))
    ask_name = f"amd-ask-{p}"
    ask_path = trust_dir / f"{ask_name}.pem"
    _write_atomic(ask_path, _pem_file(ask_name, spec.url, [ask], at))
    out.append(TrustFetchResult(ask_name, spec.url, ask_path))
    if include_vlek:
        vspec = cert_chain_spec(base, product=product, key="vlek")
        asvk_name = f"amd-asvk-{p}"
        try:
            vres = transport.get(vspec.url, vspec.what)
            asvk, vark = vspec.parse(vres).collateral.certificates
            # 4. The VLEK chain must end in the same pinned ARK, and the ASVK be signed by it.
            if vark != ark:
                raise ConfigurationError(
                    f"{vspec.url}: the ARK differs from the pinned {pin_name}",
                    code="trust.unpinned",
                )
            _check_issued_by(asvk, ark, "ASVK", vspec.url)
            asvk_path = trust_dir / f"{asvk_name}.pem"
            _write_atomic(asvk_path, _pem_file(asvk_name, vspec.url, [asvk], at))
            out.append(TrustFetchResult(asvk_name, vspec.url, asvk_path))
        except AtlsError as e:
            out.append(TrustFetchResult(asvk_name, vspec.url, error=e))
    return out


def fetch_trust_anchors(
    trust_dir: str | os.PathLike[str] | None = None,
    *,
    intel: bool = True,
    amd_products: Iterable[str] = PRODUCTS,
    include_vlek: bool = True,
    kds_url: str | None = None,
    intel_root_url: str | None = None,
    verify: TlsVerify = None,
    timeout: float = 30.0,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    client: httpx.Client | None = None,
    at: _dt.datetime | None = None,
) -> list[TrustFetchResult]:
    """Download the vendor roots into ``trust_dir`` (default :func:`default_trust_dir`).

    Returns one result per file; a failed item (network, unpinned root, bad signature) is
    reported in its result and nothing is written for it. Never raises for a single item.
    """
    target = Path(trust_dir) if trust_dir is not None else default_trust_dir()
    base = amd_base(kds_url)
    products = [norm_product(p) for p in amd_products]
    when = at or _dt.datetime.now(_dt.UTC)
    transport = SyncTransport(
        verify=verify, timeout=timeout, retry=retry or RetryPolicy(), sleep=sleep, client=client
    )
    results: list[TrustFetchResult] = []
    try:
        if intel:
            results.append(_intel(transport, target, intel_root_url or INTEL_ROOT_CA_URL, when))
        for product in products:
            results += _amd(transport, target, base, product, when, include_vlek)
    finally:
        transport.close()
    return results


def _header(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.startswith("#"):
            if line.startswith("-----BEGIN"):
                break
            continue
        k, sep, v = line[1:].partition(":")
        k = k.strip()
        if sep and k in _HEADER_KEYS and k not in out:
            out[k] = v.strip()
    return out


def list_trust(
    trust_dir: str | os.PathLike[str] | None = None, *, allow_simulated: bool = False
) -> list[TrustListing]:
    """What ``trust_dir`` trusts (anchors, checked against the pins exactly as verifiers
    load them) and the intermediates kept beside them, with where each file came from."""
    target = Path(trust_dir) if trust_dir is not None else default_trust_dir()
    store = TrustStore.from_directory(target, allow_simulated=allow_simulated)
    by_der = {a.der: a for a in store.anchors}
    vendor_of_issuer = {CertInfo(a.der).subject_cn: a.vendor for a in store.anchors}
    out: list[TrustListing] = []
    seen: set[bytes] = set()
    for f in sorted(target.iterdir()):
        if not f.is_file() or f.stat().st_size > 1 << 20:
            continue
        data = f.read_bytes()
        hdr = _header(data)
        for der in split_certificates(data):
            if der in seen:
                continue
            seen.add(der)
            try:
                info = CertInfo(der)
            except ValueError:
                continue
            a = by_der.get(der)
            out.append(
                TrustListing(
                    name=a.name if a else info.subject_cn,
                    vendor=a.vendor if a else vendor_of_issuer.get(info.issuer_cn, ""),
                    role="anchor" if a else "intermediate",
                    subject=info.subject_cn,
                    sha256=fingerprint(der),
                    not_after=info.not_after,
                    file=f,
                    origin=hdr.get("source"),
                    fetched=hdr.get("fetched"),
                    simulated=a.simulated if a else False,
                )
            )
    return out

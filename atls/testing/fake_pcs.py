"""A loopback HTTPS server that plays Intel PCS/PCCS and AMD KDS, for tests.

It serves whatever collateral it is given with the vendors' real URL paths, response headers
(URL-encoded PEM issuer chains), content types and status codes (400 for malformed queries,
404 for unknown platforms), and can be scripted to misbehave: 429 with Retry-After, 5xx,
truncated bodies, wrong content types (:meth:`FakeVendorServer.enqueue`).

Its TLS certificate comes from a throwaway CA made here with ``cryptography``; point a
fetcher at :attr:`FakeVendorServer.base_url` with ``verify=server.ca_file`` (or
``server.client_ssl_context()``). Nothing here is trusted anywhere else.

:func:`add_intel_vectors` / :func:`add_amd_vectors` register the real collateral of the
shared test-vector folder. The vectors hold no AMD CRL, so :func:`make_test_crl` makes
stand-in CRLs under the ARK's name, signed by a throwaway key: they have the right shape for
fetching and caching, and will fail any signature check, as they should.
"""

from __future__ import annotations

import binascii
import datetime as _dt
import ipaddress
import json
import secrets
import ssl
import tempfile
import threading
import urllib.parse
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "INTEL_VECTOR_SETS",
    "AmdVector",
    "FakeResponse",
    "FakeVendorServer",
    "IntelVector",
    "RecordedRequest",
    "add_amd_vectors",
    "add_fake_intel",
    "add_intel_vectors",
    "make_test_crl",
]


@dataclass(frozen=True)
class FakeResponse:
    """A scripted response. ``truncate_to`` sends only that many body bytes (Content-Length
    still announces the whole body) and then closes the connection."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    truncate_to: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: dict[str, str]


def _quote_chain(pem: bytes) -> str:
    return urllib.parse.quote(pem.decode("ascii"), safe="")


def _pem_cert(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def _crl_pem(der: bytes) -> bytes:
    return x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)


def _request_id() -> str:
    return secrets.token_hex(16)


# -- the throwaway TLS CA -----------------------------------------------------------------


class _TlsFiles:
    def __init__(self, directory: Path) -> None:
        now = _dt.datetime.now(_dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "atls fake vendor test CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM)
        self.ca_file = directory / "fake-vendor-ca.pem"
        self.ca_file.write_bytes(self.ca_pem)
        self.cert_file = directory / "server.pem"
        self.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        self.key_file = directory / "server.key"
        self.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


# -- the server ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-vendor/1"
    protocol_version = "HTTP/1.0"
    owner: FakeVendorServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query_pairs = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
        query = dict(query_pairs)
        owner = type(self).owner
        owner._record(RecordedRequest(parsed.path, query))
        if len(query) != len(query_pairs):
            resp = FakeResponse(400, b"repeated query parameter")
        else:
            resp = owner._respond(parsed.path, query)
        self._send(resp)

    def _send(self, resp: FakeResponse) -> None:
        self.send_response(resp.status)
        headers = {k.lower(): (k, v) for k, v in resp.headers.items()}
        for name, value in headers.values():
            self.send_header(name, value)
        if "content-length" not in headers:
            self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        body = resp.body if resp.truncate_to is None else resp.body[: resp.truncate_to]
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


def _int_param(v: str | None) -> int | None:
    if v is None or not v.isdigit() or len(v) > 3:
        return None
    n = int(v)
    return n if n <= 255 else None


class FakeVendorServer:
    """Intel PCS/PCCS + AMD KDS on ``https://127.0.0.1:<port>``. Use as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="atls-fake-vendor-")
        self._tls = _TlsFiles(Path(self._tmp.name))
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.requests: list[RecordedRequest] = []
        self._queues: dict[str, deque[FakeResponse]] = {}
        # Intel
        self._tcb: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self._qe: dict[str, tuple[bytes, bytes]] = {}
        self._pck_crl: dict[str, tuple[bytes, bytes]] = {}
        self._root_crl: bytes | None = None
        self._root_ca: bytes | None = None
        # AMD
        self._vcek: dict[tuple[str, str, tuple[int | None, int, int, int, int]], bytes] = {}
        self._chain: dict[tuple[str, str], bytes] = {}
        self._amd_crl: dict[tuple[str, str], bytes] = {}

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeVendorServer:
        if self._httpd is not None:
            return self
        handler = type("BoundHandler", (_Handler,), {"owner": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port or 0), handler)
        httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (the port is closed; later requests get connection refused)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> FakeVendorServer:
        return self.start()

    def __exit__(
        self,
        t: type[BaseException] | None,
        e: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("server not started")
        return f"https://127.0.0.1:{self._port}"

    @property
    def ca_file(self) -> Path:
        """PEM file of the CA that issued the server's TLS certificate."""
        return self._tls.ca_file

    @property
    def ca_pem(self) -> bytes:
        return self._tls.ca_pem

    def client_ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self._tls.ca_pem.decode("ascii"))

    # -- scripting and inspection -----------------------------------------------------------

    def enqueue(self, path: str, *responses: FakeResponse) -> None:
        """Answer the next requests for ``path`` (any query) with ``responses``, in order,
        before the normal behaviour resumes."""
        with self._lock:
            self._queues.setdefault(path, deque()).extend(responses)

    def _record(self, r: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(r)

    def count(self, path: str) -> int:
        """How many requests were made for exactly ``path``."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)

    # -- Intel ------------------------------------------------------------------------------

    def add_intel_tcb_info(
        self, *, tee: str, fmspc: str, body: bytes, issuer_chain_pem: bytes
    ) -> None:
        """Serve ``body`` (the PCS JSON) at ``/{tee}/certification/v4/tcb?fmspc=``."""
        with self._lock:
            self._tcb[(tee, fmspc.lower())] = (body, issuer_chain_pem)

    def add_intel_qe_identity(self, *, tee: str, body: bytes, issuer_chain_pem: bytes) -> None:
        with self._lock:
            self._qe[tee] = (body, issuer_chain_pem)

    def add_intel_pck_crl(self, *, ca: str, der: bytes, issuer_chain_pem: bytes) -> None:
        with self._lock:
            self._pck_crl[ca] = (der, issuer_chain_pem)

    def set_intel_root_ca_crl(self, der: bytes) -> None:
        """Served as hex at the PCCS path ``/sgx/certification/v4/rootcacrl`` and as DER at
        ``/IntelSGXRootCA.der`` (the root CA's CRL distribution point on Intel's server)."""
        with self._lock:
            self._root_crl = der

    def set_intel_root_ca(self, der: bytes) -> None:
        """Served at ``/Intel_SGX_Provisioning_Certification_RootCA.pem`` (and ``.der``)."""
        with self._lock:
            self._root_ca = der

    def _intel(self, path: str, q: dict[str, str]) -> FakeResponse | None:
        rid = {"Request-ID": _request_id()}
        invalid = FakeResponse(400, b"", {**rid, "Error-Code": "InvalidParameter"})
        for tee in ("sgx", "tdx"):
            prefix = f"/{tee}/certification/v4/"
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if rest == "tcb":
                fmspc = q.get("fmspc", "")
                if len(fmspc) != 12 or any(c not in "0123456789abcdefABCDEF" for c in fmspc):
                    return invalid
                if q.get("update", "standard") not in ("standard", "early"):
                    return invalid
                tcb = self._tcb.get((tee, fmspc.lower()))
                if tcb is None:
                    return FakeResponse(404, b"", rid)
                return FakeResponse(
                    200,
                    tcb[0],
                    {
                        **rid,
                        "Content-Type": "application/json",
                        "TCB-Info-Issuer-Chain": _quote_chain(tcb[1]),
                    },
                )
            if rest == "qe/identity":
                if q.get("update", "standard") not in ("standard", "early"):
                    return invalid
                qe = self._qe.get(tee)
                if qe is None:
                    return FakeResponse(404, b"", rid)
                return FakeResponse(
                    200,
                    qe[0],
                    {
                        **rid,
                        "Content-Type": "application/json",
                        "SGX-Enclave-Identity-Issuer-Chain": _quote_chain(qe[1]),
                    },
                )
            if tee == "sgx" and rest == "pckcrl":
                ca = q.get("ca", "").lower()
                encoding = q.get("encoding", "pem")
                if ca not in ("platform", "processor") or encoding not in ("pem", "der"):
                    return invalid
                crl = self._pck_crl.get(ca)
                if crl is None:
                    return FakeResponse(404, b"", rid)
                body, ctype = (
                    (crl[0], "application/pkix-crl")
                    if encoding == "der"
                    else (_crl_pem(crl[0]), "application/x-pem-file")
                )
                return FakeResponse(
                    200,
                    body,
                    {
                        **rid,
                        "Content-Type": ctype,
                        "SGX-PCK-CRL-Issuer-Chain": _quote_chain(crl[1]),
                    },
                )
            if tee == "sgx" and rest == "rootcacrl":
                if self._root_crl is None:
                    return FakeResponse(404, b"", rid)
                # A PCCS answers with the CRL as a hex string through Express res.send().
                return FakeResponse(
                    200,
                    binascii.hexlify(self._root_crl),
                    {"Content-Type": "text/html; charset=utf-8"},
                )
            return FakeResponse(404, b"", rid)
        if path == "/IntelSGXRootCA.der":
            if self._root_crl is None:
                return FakeResponse(404, b"")
            return FakeResponse(200, self._root_crl, {"Content-Type": "application/pkix-crl"})
        if path.startswith("/Intel_SGX_Provisioning_Certification_RootCA."):
            if self._root_ca is None:
                return FakeResponse(404, b"")
            if path.endswith(".pem"):
                return FakeResponse(
                    200, _pem_cert(self._root_ca), {"Content-Type": "application/x-pem-file"}
                )
            if path.endswith((".der", ".cer")):
                return FakeResponse(200, self._root_ca, {"Content-Type": "application/pkix-cert"})
        return None

    # -- AMD --------------------------------------------------------------------------------

    def add_amd_vcek(
        self,
        *,
        product: str,
        hwid: str,
        tcb: tuple[int | None, int, int, int, int],
        der: bytes,
    ) -> None:
        """Serve ``der`` at ``/vcek/v1/{product}/{hwid}`` for ``tcb`` = (fmc or None, boot
        loader, TEE, SNP, microcode) SPLs."""
        with self._lock:
            self._vcek[(product, hwid.lower(), tcb)] = der

    def add_amd_cert_chain(self, *, product: str, pem: bytes, key: str = "vcek") -> None:
        with self._lock:
            self._chain[(key, product)] = pem

    def add_amd_crl(self, *, product: str, der: bytes, key: str = "vcek") -> None:
        with self._lock:
            self._amd_crl[(key, product)] = der

    def _amd(self, path: str, q: dict[str, str]) -> FakeResponse | None:
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[0] not in ("vcek", "vlek") or parts[1] != "v1":
            return None
        key, _, product, leaf = parts
        if product not in ("Milan", "Genoa", "Turin"):
            return FakeResponse(404, b"Not Found")
        if leaf == "cert_chain":
            pem = self._chain.get((key, product))
            if pem is None:
                return FakeResponse(404, b"Not Found")
            return FakeResponse(200, pem, {"Content-Type": "application/x-pem-file"})
        if leaf == "crl":
            der = self._amd_crl.get((key, product))
            if der is None:
                return FakeResponse(404, b"Not Found")
            return FakeResponse(200, der, {"Content-Type": "application/pkix-crl"})
        if key != "vcek":
            return FakeResponse(404, b"Not Found")
        hwid_len = 16 if product == "Turin" else 128
        if len(leaf) != hwid_len or any(c not in "0123456789abcdefABCDEF" for c in leaf):
            return FakeResponse(400, b"Bad Request: hwid")
        names = ["blSPL", "teeSPL", "snpSPL", "ucodeSPL"] + (
            ["fmcSPL"] if product == "Turin" else []
        )
        if set(q) != set(names):
            return FakeResponse(400, b"Bad Request: TCB parameters")
        vals = {n: _int_param(q[n]) for n in names}
        if any(v is None for v in vals.values()):
            return FakeResponse(400, b"Bad Request: TCB parameters")
        tcb = (
            vals.get("fmcSPL"),
            vals["blSPL"] or 0,
            vals["teeSPL"] or 0,
            vals["snpSPL"] or 0,
            vals["ucodeSPL"] or 0,
        )
        der = self._vcek.get((product, leaf.lower(), tcb))
        if der is None:
            return FakeResponse(404, b"Not Found")
        return FakeResponse(200, der, {"Content-Type": "application/octet-stream"})

    # -- dispatch ---------------------------------------------------------------------------

    def _respond(self, path: str, query: dict[str, str]) -> FakeResponse:
        with self._lock:
            q = self._queues.get(path)
            if q:
                return q.popleft()
            for route in (self._intel, self._amd):
                resp = route(path, query)
                if resp is not None:
                    return resp
        return FakeResponse(404, b"")


# -- test collateral ------------------------------------------------------------------------


def make_test_crl(
    issuer_cn: str,
    *,
    this_update: _dt.datetime,
    next_update: _dt.datetime,
) -> bytes:
    """A DER CRL named as issued by ``issuer_cn`` but signed by a throwaway key (a stand-in
    where no real CRL is available; it fails every signature check)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn),
        ]
    )
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(this_update)
        .next_update(next_update)
    )
    return b.sign(key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class IntelVector:
    """One set of real Intel collateral registered on the server."""

    name: str
    tee: str
    fmspc: str
    ca: str
    pce_id: str
    valid_from: _dt.datetime
    valid_until: _dt.datetime
    tcb_info_body: bytes
    qe_identity_body: bytes


def _t(s: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(s)


def _pcs_body(field_name: str, signed: str, signature_hex: str) -> bytes:
    return (
        b'{"'
        + field_name.encode()
        + b'":'
        + signed.encode("utf-8")
        + b',"signature":"'
        + signature_hex.encode("ascii")
        + b'"}'
    )


def _crl_der(hex_or_der: str | bytes) -> bytes:
    return binascii.unhexlify(hex_or_der) if isinstance(hex_or_der, str) else hex_or_der


#: dcap-qvl QuoteCollateralV3 files among the vectors: name -> (path, tee)
_DCAP_QVL_SETS = {
    "dcap-qvl-tdx": ("tdx/dcap-qvl/tdx_quote_collateral.json", "tdx"),
    "dcap-qvl-tdx-outdated": ("tdx/dcap-qvl/tdx_quote_outdated_collateral.json", "tdx"),
    "dcap-qvl-near": ("tdx/dcap-qvl/near_quote_collateral.json", "tdx"),
    "dcap-qvl-sgx": ("sgx/dcap-qvl/sgx_quote_collateral.json", "sgx"),
    "zkdcap-tdx": ("tdx/zkdcap/quote_tdx_00806f050000.dat.dcap-qvl-collateral.json", "tdx"),
    "zkdcap-sgx": ("sgx/zkdcap/quote_sgx_00906ed50000.dat.dcap-qvl-collateral.json", "sgx"),
}

INTEL_VECTOR_SETS = ("go-tdx-guest", *_DCAP_QVL_SETS)


def _window(
    tcb: dict[str, object], qe: dict[str, object], crls: Iterable[bytes]
) -> tuple[_dt.datetime, _dt.datetime]:
    starts = [_t(str(tcb["issueDate"])), _t(str(qe["issueDate"]))]
    ends = [_t(str(tcb["nextUpdate"])), _t(str(qe["nextUpdate"]))]
    for der in crls:
        c = x509.load_der_x509_crl(der)
        starts.append(c.last_update_utc)
        if c.next_update_utc is not None:
            ends.append(c.next_update_utc)
    return max(starts), min(ends)


def _pem_chain(ders: Iterable[bytes]) -> bytes:
    return b"".join(_pem_cert(d) for d in ders)


def add_fake_intel(
    server: FakeVendorServer, fake: object, *, tee: str = "tdx", **knobs: object
) -> str:
    """Serve the collateral of an :class:`atls.testing.tdx.FakeIntel` (its TCB info, QE
    identity, PCK CRL and root CA CRL, ``knobs`` as for ``FakeIntel.collateral``) the way
    PCS does; returns the FMSPC it is served under. Simulated: trusted nowhere by default."""
    from atls.testing.tdx import FakeIntel

    if not isinstance(fake, FakeIntel):
        raise TypeError("fake must be an atls.testing.tdx.FakeIntel")
    c = fake.collateral(tee=tee, issuer_chains=True, **knobs)  # type: ignore[arg-type]
    (tcb,) = c.documents_of(f"{tee}-tcb-info")
    (qe,) = c.documents_of(f"{tee}-qe-identity")
    root_crl, pck_crl = c.crls
    fmspc = str(json.loads(tcb.body)["fmspc"]).lower()
    server.add_intel_tcb_info(
        tee=tee,
        fmspc=fmspc,
        body=_pcs_body("tcbInfo", tcb.body.decode("utf-8"), tcb.signature.hex()),
        issuer_chain_pem=_pem_chain(tcb.issuer_chain),
    )
    server.add_intel_qe_identity(
        tee=tee,
        body=_pcs_body("enclaveIdentity", qe.body.decode("utf-8"), qe.signature.hex()),
        issuer_chain_pem=_pem_chain(qe.issuer_chain),
    )
    server.add_intel_pck_crl(
        ca=fake.ca, der=pck_crl, issuer_chain_pem=_pem_chain((fake.pck_ca_der, fake.root_der))
    )
    server.set_intel_root_ca_crl(root_crl)
    return fmspc


def add_intel_vectors(server: FakeVendorServer, vectors: Path, name: str) -> IntelVector:
    """Register one real Intel collateral set from the test vectors (``name`` is one of
    :data:`INTEL_VECTOR_SETS`); returns what was registered and its common validity window.
    A later set replaces the QE identity, PCK CRL and root CRL of an earlier one."""
    if name == "go-tdx-guest":
        d = vectors / "tdx" / "go-tdx-guest"
        tcb_body = (d / "sample_tcbInfo_response").read_bytes()
        qe_body = (d / "sample_qeIdentity_response").read_bytes()
        pck_crl = (d / "pckcrl").read_bytes()
        root_crl = (d / "rootcrl.der").read_bytes()
        tcb_chain = (d / "tcb_info_issuer_chain.pem").read_bytes()
        qe_chain = (d / "qe_identity_issuer_chain.pem").read_bytes()
        crl_chain = (d / "pck_crl_issuer_chain.pem").read_bytes()
        tee = "tdx"
    elif name in _DCAP_QVL_SETS:
        rel, tee = _DCAP_QVL_SETS[name]
        obj = json.loads((vectors / rel).read_bytes())
        tcb_body = _pcs_body("tcbInfo", obj["tcb_info"], obj["tcb_info_signature"])
        qe_body = _pcs_body("enclaveIdentity", obj["qe_identity"], obj["qe_identity_signature"])
        pck_crl = _crl_der(obj["pck_crl"])
        root_crl = _crl_der(obj["root_ca_crl"])
        tcb_chain = obj["tcb_info_issuer_chain"].encode("ascii")
        qe_chain = obj["qe_identity_issuer_chain"].encode("ascii")
        crl_chain = obj["pck_crl_issuer_chain"].encode("ascii")
    else:
        raise ValueError(f"unknown Intel vector set {name!r}; known: {INTEL_VECTOR_SETS}")
    tcb = json.loads(tcb_body)["tcbInfo"]
    qe = json.loads(qe_body)["enclaveIdentity"]
    issuer = x509.load_der_x509_crl(pck_crl).issuer.rfc4514_string()
    ca = "processor" if "Processor" in issuer else "platform"
    server.add_intel_tcb_info(
        tee=tee, fmspc=tcb["fmspc"], body=tcb_body, issuer_chain_pem=tcb_chain
    )
    server.add_intel_qe_identity(tee=tee, body=qe_body, issuer_chain_pem=qe_chain)
    server.add_intel_pck_crl(ca=ca, der=pck_crl, issuer_chain_pem=crl_chain)
    server.set_intel_root_ca_crl(root_crl)
    start, end = _window(tcb, qe, (pck_crl, root_crl))
    return IntelVector(
        name=name,
        tee=tee,
        fmspc=str(tcb["fmspc"]).lower(),
        ca=ca,
        pce_id=str(tcb.get("pceId", "0000")).lower(),
        valid_from=start,
        valid_until=end,
        tcb_info_body=tcb_body,
        qe_identity_body=qe_body,
    )


@dataclass(frozen=True)
class AmdVector:
    """One real VCEK registered on the server, with the request that fetches it."""

    source: str
    product: str
    hwid: str
    tcb: tuple[int | None, int, int, int, int]
    der: bytes


#: Real VCEKs among the vectors (file, PEM or DER).
_VCEK_FILES = (
    "snp/go-sev-guest/vcek.testcer",
    "snp/virtee-sev/vcek_milan.der",
    "snp/virtee-sev/vcek_turin.der",
    "snp/ms-tee-attestation-verification/milan_vcek.pem",
    "snp/ms-tee-attestation-verification/genoa_vcek.pem",
    "snp/ms-tee-attestation-verification/turin_vcek.pem",
    "snp/trustee/test-vcek.der",
    "snp/dstack/sev_snp_vcek.pem",
)
#: KDS cert_chain bundles among the vectors: (key, product) -> file
_CHAIN_FILES = {
    ("vcek", "Milan"): "snp/go-sev-guest/ask_ark_milan.pem",
    ("vcek", "Genoa"): "snp/go-sev-guest/ask_ark_genoa.pem",
    ("vcek", "Turin"): "snp/go-sev-guest/ask_ark_turin_vcek.pem",
    ("vlek", "Milan"): "snp/go-sev-guest/ask_ark_milan_vlek.pem",
    ("vlek", "Genoa"): "snp/go-sev-guest/ask_ark_genoa_vlek.pem",
    ("vlek", "Turin"): "snp/go-sev-guest/ask_ark_turin_vlek.pem",
}


def add_amd_vectors(
    server: FakeVendorServer, vectors: Path, *, crl_time: _dt.datetime | None = None
) -> list[AmdVector]:
    """Register every real VCEK and KDS cert_chain of the test vectors, plus stand-in CRLs
    (:func:`make_test_crl`, valid for 7 days from ``crl_time``, default now)."""
    from atls.collateral._sniff import is_der_sequence, split_certificates
    from atls.collateral.fetch._x509 import vcek_extensions

    out: list[AmdVector] = []
    for rel in _VCEK_FILES:
        raw = (vectors / rel).read_bytes()
        ders = [raw] if is_der_sequence(raw) else split_certificates(raw)
        if len(ders) != 1:
            raise ValueError(f"{rel}: expected one certificate")
        der = ders[0]
        ext = vcek_extensions(der)
        product = str(ext["productName"]).split("-", 1)[0]
        hwid_raw = ext["hwID"]
        assert isinstance(hwid_raw, bytes)
        fmc = ext.get("fmcSPL")
        tcb = (
            fmc if isinstance(fmc, int) else None,
            int(ext["blSPL"]),
            int(ext["teeSPL"]),
            int(ext["snpSPL"]),
            int(ext["ucodeSPL"]),
        )
        server.add_amd_vcek(product=product, hwid=hwid_raw.hex(), tcb=tcb, der=der)
        out.append(AmdVector(rel, product, hwid_raw.hex(), tcb, der))
    for (key, product), rel in _CHAIN_FILES.items():
        server.add_amd_cert_chain(product=product, pem=(vectors / rel).read_bytes(), key=key)
    t0 = crl_time or _dt.datetime.now(_dt.UTC)
    for key, product in _CHAIN_FILES:
        server.add_amd_crl(
            product=product,
            key=key,
            der=make_test_crl(
                f"ARK-{product}", this_update=t0, next_update=t0 + _dt.timedelta(days=7)
            ),
        )
    return out

"""SecretVM end to end on loopback: an HTTPS attestation port serving a (simulated) TDX quote
bound to its own key, `atls secretvm verify` over that one connection, and
`atls connect --profile secretvm` to an application port that must present the attested key.
Plus the registry and RTMR3 checks on the real SecretVM quote of the vectors."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atls.cli import main
from atls.collateral import Collateral
from atls.evidence.tdx import TDX_QUOTE
from atls.interop.secretvm import load_registry, select_registry_row
from atls.measure.secretvm import secretvm_rtmr3
from atls.testing.tdx import FakeIntel
from atls.trust import TrustStore

INTEL = FakeIntel()
MR_TD = hashlib.sha384(b"secretvm template").digest()
RTMRS = [hashlib.sha384(b"rtmr%d" % i).digest() for i in range(3)]
ROOTFS = hashlib.sha256(b"rootfs image").digest()
COMPOSE = b"services:\n  app:\n    image: example/app@sha256:abc\n"


@dataclass
class Pki:
    ca_pem: Path
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(tmp: Path) -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path = tmp / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Pki(path, (cert, key))


def _leaf(pki: Pki, tmp: Path, name: str) -> tuple[Path, Path, bytes, bytes]:
    ca_cert, ca_key = pki.ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name("vm")).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cert_path, key_path, spki, cert.public_bytes(serialization.Encoding.DER)


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


class _Attestation(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path != "/cpu.html":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def _attestation_port(ctx: ssl.SSLContext, quote: bytes) -> Iterator[int]:
    page = b"<html><pre>" + quote.hex().encode() + b"</pre></html>"
    handler = type("H", (_Attestation,), {"body": page})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


class _EchoApp:
    """A TLS echo service (the VM's application port) recording what it received."""

    def __init__(self, ctx: ssl.SSLContext, *, close_notify: bool = True) -> None:
        self.ctx = ctx
        self.close_notify = close_notify
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as tls:
                    while data := tls.recv(65536):
                        self.received += data
                        tls.sendall(data)
                    if self.close_notify:
                        tls.unwrap()
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.sock.close()


def _quote(report_data: bytes, rtmr3: bytes = bytes(48)) -> bytes:
    return INTEL.quote(report_data, mr_td=MR_TD, rtmr=(*RTMRS, rtmr3))


def _registry(tmp: Path) -> Path:
    p = tmp / "tdx.csv"
    p.write_text(
        "template_name,vm_type,artifacts_ver,mrtd,rtmr0,rtmr1,rtmr2,rootfs_data\n"
        f"small,prod,v1,{MR_TD.hex()},{RTMRS[0].hex()},{RTMRS[1].hex()},{RTMRS[2].hex()},"
        f"{ROOTFS.hex()}\n"
    )
    return p


@pytest.fixture
def vm(tmp_path: Path):
    """(attestation port, app, pki, spki, cert_der, tmp) for a VM whose quote binds its key
    and whose RTMR3 measures COMPOSE on ROOTFS."""
    pki = _ca(tmp_path)
    cert, key, spki, _ = _leaf(pki, tmp_path, "vm")
    rtmr3 = secretvm_rtmr3(COMPOSE, ROOTFS)
    quote = _quote(hashlib.sha256(spki).digest() + bytes(32), rtmr3)
    ctx = _context(cert, key)
    app = _EchoApp(ctx)
    gen = _attestation_port(ctx, quote)
    port = next(gen)
    try:
        yield port, app, pki, tmp_path
    finally:
        app.close()
        gen.close()


def _cli(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_secretvm_verify_over_one_connection(vm) -> None:
    port, _app, pki, tmp = vm
    (tmp / "compose.yaml").write_bytes(COMPOSE)
    r = _cli("secretvm", "verify", f"https://127.0.0.1:{port}", "--ca-file", str(pki.ca_pem),
             "--allow-simulated", "--registry", str(_registry(tmp)),
             "--compose", str(tmp / "compose.yaml"), "--json")  # fmt: skip
    out = json.loads(r.stdout)
    assert r.exit_code == 0, out["errors"]
    assert out["binding"] == "spki"
    assert [r["template"] for r in out["registry"]] == ["small"]
    assert not any(u.startswith(("binding:", "measurements:")) for u in out["unchecked"])
    assert out["measurements_checked"] == ["mr_td, rtmr0-2 (registry)", "rtmr3 (compose file)"]
    # without the registry: said, and the key is there (null)
    r = _cli("secretvm", "verify", f"https://127.0.0.1:{port}", "--ca-file", str(pki.ca_pem),
             "--allow-simulated", "--json")  # fmt: skip
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["registry"] is None
    assert any(u.startswith("secretvm: no registry") for u in out["unchecked"])
    # another compose file: RTMR3 does not match
    (tmp / "other.yaml").write_bytes(COMPOSE + b"# tampered\n")
    r = _cli("secretvm", "verify", f"https://127.0.0.1:{port}", "--ca-file", str(pki.ca_pem),
             "--allow-simulated", "--registry", str(_registry(tmp)),
             "--compose", str(tmp / "other.yaml"), "--json")  # fmt: skip
    out = json.loads(r.stdout)
    assert r.exit_code == 1 and out["errors"][0]["code"] == "policy"
    # simulated evidence needs the opt-in
    r = _cli("secretvm", "verify", f"https://127.0.0.1:{port}", "--ca-file", str(pki.ca_pem),
             "--json")  # fmt: skip
    assert r.exit_code == 1


@pytest.mark.parametrize("bound_to", ["other-key", "certificate"])
def test_quote_bound_to_something_else(tmp_path: Path, bound_to: str) -> None:
    pki = _ca(tmp_path)
    cert, key, _, der = _leaf(pki, tmp_path, "vm")
    _, _, other_spki, _ = _leaf(pki, tmp_path, "other")
    head = hashlib.sha256(other_spki if bound_to == "other-key" else der).digest()
    gen = _attestation_port(_context(cert, key), _quote(head + bytes(32)))
    port = next(gen)
    try:
        args = ["secretvm", "verify", f"https://127.0.0.1:{port}", "--ca-file",
                str(pki.ca_pem), "--allow-simulated", "--json"]  # fmt: skip
        out = json.loads(_cli(*args).stdout)
        want = "secretvm.binding" if bound_to == "other-key" else "secretvm.legacy_binding"
        assert out["verdict"] == "rejected" and out["errors"][0]["code"] == want
        if bound_to == "certificate":  # older images: accepted only when asked
            r = _cli(*args, "--legacy-certificate-binding")
            assert r.exit_code == 0 and json.loads(r.stdout)["binding"] == "certificate"
    finally:
        gen.close()


def test_connect_profile_secretvm_pins_the_attested_key(vm, tmp_path: Path) -> None:
    port, app, pki, tmp = vm
    common = ["--profile", "secretvm", "--attestation-port", str(port), "--ca-file",
              str(pki.ca_pem), "--allow-simulated"]  # fmt: skip
    r = _cli("connect", f"127.0.0.1:{app.port}", *common, input=b"to the enclave\n")
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == b"to the enclave\n"
    # the app closes without close_notify: the output may be truncated, so exit 1 (no crash)
    cert, key = tmp / "vm.pem", tmp / "vm.key"
    rude = _EchoApp(_context(cert, key), close_notify=False)
    try:
        r = _cli("connect", f"127.0.0.1:{rude.port}", *common, input=b"x\n")
        assert r.exit_code == 1 and "connection broken" in r.stderr
    finally:
        rude.close()
    # an application port with another key (not the attested one): refused, nothing sent
    cert, key, _, _ = _leaf(pki, tmp_path, "impostor")
    impostor = _EchoApp(_context(cert, key))
    try:
        r = _cli("connect", f"127.0.0.1:{impostor.port}", *common, input=b"secret\n")
        assert r.exit_code == 1 and "secretvm.key_mismatch" in r.stderr
        assert impostor.received == b""
    finally:
        impostor.close()


def test_real_secretvm_quote_registry_and_compose(vectors: Path) -> None:
    d = vectors / "tdx/secretvm-verify"
    root = (vectors / "tdx/dcap-qvl/TrustedRootCA.der").read_bytes()
    intel = TrustStore.from_certificates([root])
    quote = (d / "tdx_cpu_docker_check_quote.bin").read_bytes()
    # no collateral of the quote's date is in the vectors: signatures and PCK chain only
    v = TDX_QUOTE.verify(
        quote, trust=intel, collateral=Collateral(), at=dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
        allow_missing_collateral=True,
    )  # fmt: skip
    rows = load_registry((d / "tdx.csv").read_text())
    compose = (d / "tdx_cpu_docker_check_compose.yaml").read_bytes()
    # MRTD and RTMR0-2 alone fit many templates and versions ...
    candidates, violations = select_registry_row(v.claims, rows, None)
    assert violations == [] and len(candidates) > 1
    # ... the compose file and RTMR3 pick the one upstream reports (authentic_match)
    matched, violations = select_registry_row(v.claims, rows, compose)
    assert violations == []
    assert [(r.template, r.environment) for r in matched] == [("small", "prod")]
    # a tampered compose file matches no row (upstream: authentic_mismatch)
    none, violations = select_registry_row(v.claims, rows, compose + b"\n# tampered")
    assert none == () and [x.rule for x in violations] == ["rtmr3"]

"""Intel DCAP quote parsing: SGX quote v3, TDX quote v4 (TD 1.0 body) and v5 (TD 1.0 /
TD 1.5 bodies), ECDSA-256 attestation keys, certification data type 6 (QE report
certification data) wrapping type 5 (PEM PCK certificate chain).

Layout (Intel SGX ECDSA Quote Library API, Intel TDX DCAP Quoting Library API, appendix A)::

    header            48   version u16, att_key_type u16, tee_type u32, qe_svn u16 (reserved
                           in v4/v5), pce_svn u16 (reserved in v4/v5), qe_vendor_id 16,
                           user_data 20
    v5 only             6   body_type u16 (1 SGX, 2 TD 1.0, 3 TD 1.5), body_size u32
    body      384/584/648   SGX enclave report / TD report 1.0 / TD report 1.5
    sig_data_len        4
    signature data:   v3   signature 64, attestation key 64, QE report 384, QE report
                           signature 64, QE auth data (u16 size + data), certification data
                           (u16 type + u32 size + data)
                      v4/v5 signature 64, attestation key 64, certification data whose type is
                           6 and whose data is the v3 tail (QE report ... certification data)

The signature covers every byte before ``sig_data_len``. Bytes after the signature data are
tolerated (some stacks hand out fixed-size buffers) and reported as ``trailing``; they are not
covered by any signature and never read. Every length is checked against the bytes that are
actually there, so lying length fields raise :class:`~atls.errors.EvidenceParseError`.
"""

from __future__ import annotations

import binascii
from typing import NamedTuple

from atls.errors import EvidenceParseError, UnsupportedEvidenceError

__all__ = [
    "ATT_KEY_TYPE_ECDSA_P256",
    "BODY_SGX",
    "BODY_TD10",
    "BODY_TD15",
    "CERT_DATA_PCK_CHAIN",
    "CERT_DATA_QE_REPORT",
    "HEADER_SIZE",
    "INTEL_QE_VENDOR_ID",
    "MAX_QUOTE_SIZE",
    "TEE_TYPE_SGX",
    "TEE_TYPE_TDX",
    "EnclaveReport",
    "Quote",
    "QuoteHeader",
    "TdReport",
    "parse_pem_chain",
    "parse_quote",
]

HEADER_SIZE = 48
ENCLAVE_REPORT_SIZE = 384
TD10_SIZE = 584
TD15_SIZE = 648
#: Upper bound on a quote (real ones are 4-8 KiB); larger inputs are refused before parsing.
MAX_QUOTE_SIZE = 256 * 1024
MAX_PCK_CHAIN_CERTS = 8

ATT_KEY_TYPE_ECDSA_P256 = 2
ATT_KEY_TYPE_ECDSA_P384 = 3
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
BODY_SGX = 1
BODY_TD10 = 2
BODY_TD15 = 3
CERT_DATA_PCK_CHAIN = 5
CERT_DATA_QE_REPORT = 6
#: Intel's QE vendor ID (939A7233-F79C-4CA9-940A-0DB3957F0607).
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

_BODY_SIZES = {BODY_SGX: ENCLAVE_REPORT_SIZE, BODY_TD10: TD10_SIZE, BODY_TD15: TD15_SIZE}


class QuoteHeader(NamedTuple):
    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


class EnclaveReport(NamedTuple):
    """An SGX REPORT body (384 bytes): the SGX quote body and the QE report."""

    raw: bytes
    cpu_svn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.DEBUG (bit 1 of the flags)."""
        return bool(self.attributes[0] & 0x02)

    @classmethod
    def parse(cls, raw: bytes) -> EnclaveReport:
        if len(raw) != ENCLAVE_REPORT_SIZE:  # callers slice exactly; defensive
            raise ValueError("enclave report must be 384 bytes")
        return cls(
            raw,
            raw[0:16],
            int.from_bytes(raw[16:20], "little"),
            raw[32:48],
            raw[48:64],
            raw[64:96],
            raw[128:160],
            raw[192:256],
            int.from_bytes(raw[256:258], "little"),
            int.from_bytes(raw[258:260], "little"),
            int.from_bytes(raw[260:262], "little"),
            raw[304:320],
            raw[320:384],
        )


class TdReport(NamedTuple):
    """A TD quote body: TD report 1.0 (584 bytes) or 1.5 (648 bytes)."""

    raw: bytes
    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmr: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_servicetd: bytes | None = None

    @property
    def td_attributes_u64(self) -> int:
        return int.from_bytes(self.td_attributes, "little")

    @property
    def debug(self) -> bool:
        """TD_ATTRIBUTES.TUD.DEBUG (bit 0)."""
        return bool(self.td_attributes[0] & 0x01)

    @property
    def sept_ve_disable(self) -> bool:
        """TD_ATTRIBUTES.SEC.SEPT_VE_DISABLE (bit 28)."""
        return bool(self.td_attributes_u64 & (1 << 28))

    @classmethod
    def parse(cls, raw: bytes) -> TdReport:
        if len(raw) not in (TD10_SIZE, TD15_SIZE):
            raise ValueError("TD report must be 584 or 648 bytes")
        td15 = len(raw) == TD15_SIZE
        return cls(
            raw,
            raw[0:16],
            raw[16:64],
            raw[64:112],
            raw[112:120],
            raw[120:128],
            raw[128:136],
            raw[136:184],
            raw[184:232],
            raw[232:280],
            raw[280:328],
            (raw[328:376], raw[376:424], raw[424:472], raw[472:520]),
            raw[520:584],
            raw[584:600] if td15 else None,
            raw[600:648] if td15 else None,
        )


class Quote(NamedTuple):
    """A parsed DCAP quote. Byte fields are the exact bytes received."""

    header: QuoteHeader
    body_type: int
    body: TdReport | EnclaveReport
    signed: bytes
    signature: bytes
    attestation_key: bytes
    qe_report: EnclaveReport
    qe_report_signature: bytes
    qe_auth_data: bytes
    cert_data_type: int
    cert_data: bytes
    trailing: int

    @property
    def is_tdx(self) -> bool:
        return self.header.tee_type == TEE_TYPE_TDX

    @property
    def report_data(self) -> bytes:
        return self.body.report_data


_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"
_FILLER = b" \t\r\n\x00"


def _pem_error(msg: str, fmt: str) -> EvidenceParseError:
    return EvidenceParseError(msg, format=fmt, field="pck_chain", code=f"{fmt}.parse.pck_chain")


def parse_pem_chain(data: bytes, *, fmt: str = "tdx") -> tuple[bytes, ...]:
    """DER certificates of a PEM chain (certification data type 5), leaf first.

    Only CERTIFICATE blocks of canonical base64 broken by LF or CRLF are accepted; anything
    between or around them must be whitespace or NUL padding.
    """
    out: list[bytes] = []
    pos = 0
    while True:
        start = data.find(_BEGIN, pos)
        if start < 0:
            break
        if data[pos:start].strip(_FILLER):
            raise _pem_error("unexpected bytes in the PEM certificate chain", fmt)
        end = data.find(_END, start)
        if end < 0:
            raise _pem_error("unterminated PEM certificate", fmt)
        if len(out) == MAX_PCK_CHAIN_CERTS:
            raise _pem_error(f"more than {MAX_PCK_CHAIN_CERTS} certificates in the PCK chain", fmt)
        b64 = data[start + len(_BEGIN) : end]
        if b"\r" in b64:
            b64 = b64.replace(b"\r\n", b"\n")
        b64 = b64.replace(b"\n", b"")
        try:
            der = binascii.a2b_base64(b64, strict_mode=True)
        except binascii.Error as e:
            raise _pem_error("bad base64 in the PEM certificate chain", fmt) from e
        # Canonical only: one encoding per certificate.
        if binascii.b2a_base64(der, newline=False) != b64:
            raise _pem_error("non-canonical base64 in the PEM certificate chain", fmt)
        out.append(der)
        pos = end + len(_END)
    if data[pos:].strip(_FILLER):
        raise _pem_error("unexpected bytes in the PEM certificate chain", fmt)
    if not out:
        raise _pem_error("no certificate in the PCK chain", fmt)
    return tuple(out)


def _unsupported(msg: str, code: str) -> UnsupportedEvidenceError:
    return UnsupportedEvidenceError(msg, code=code)


def _fmt_for(tee_type: int) -> str:
    return "sgx" if tee_type == TEE_TYPE_SGX else "tdx"


def _u16(b: bytes, o: int) -> int:
    return b[o] | b[o + 1] << 8


def _u32(b: bytes, o: int) -> int:
    return int.from_bytes(b[o : o + 4], "little")


def _short(fmt: str, field: str, at: int, need: int, have: int) -> EvidenceParseError:
    return EvidenceParseError(
        f"need {need} bytes, {max(have, 0)} left", format=fmt, offset=at, field=field
    )


def parse_header(data: bytes) -> QuoteHeader:
    if len(data) < HEADER_SIZE:
        raise _short("tdx", "header", 0, HEADER_SIZE, len(data))
    return QuoteHeader(
        _u16(data, 0),
        _u16(data, 2),
        _u32(data, 4),
        _u16(data, 8),
        _u16(data, 10),
        data[12:28],
        data[28:48],
    )


def _qe_report_cert_data(
    d: bytes, pos: int, end: int, fmt: str
) -> tuple[EnclaveReport, bytes, bytes, int, bytes]:
    """QE report certification data in ``d[pos:end]``: QE report, its signature, QE auth
    data and the certification data it wraps (type, data). Must fill the range exactly."""
    if end - pos < ENCLAVE_REPORT_SIZE + 64 + 2:
        raise _short(fmt, "qe_report_cert_data", pos, ENCLAVE_REPORT_SIZE + 66, end - pos)
    qe_report = EnclaveReport.parse(d[pos : pos + ENCLAVE_REPORT_SIZE])
    pos += ENCLAVE_REPORT_SIZE
    qe_sig = d[pos : pos + 64]
    pos += 64
    auth_len = _u16(d, pos)
    pos += 2
    if end - pos < auth_len + 6:
        raise _short(fmt, "qe_auth_data", pos, auth_len + 6, end - pos)
    auth = d[pos : pos + auth_len]
    pos += auth_len
    cert_type = _u16(d, pos)
    cert_size = _u32(d, pos + 2)
    pos += 6
    if end - pos < cert_size:
        raise _short(fmt, "cert_data", pos, cert_size, end - pos)
    cert_data = d[pos : pos + cert_size]
    pos += cert_size
    if pos != end:
        raise EvidenceParseError(
            f"{end - pos} unexpected trailing bytes",
            format=fmt,
            offset=pos,
            field="qe_report_cert_data",
        )
    if cert_type != CERT_DATA_PCK_CHAIN:
        raise _unsupported(
            f"certification data type {cert_type} is not supported (only 5, the PEM PCK "
            "certificate chain; other types need the PCK certificate from a PCS)",
            f"{fmt}.unsupported.cert_data_type",
        )
    return qe_report, qe_sig, auth, cert_type, cert_data


def parse_quote(data: bytes) -> Quote:
    """Parse an SGX v3 or TDX v4/v5 ECDSA-P256 quote (strict bounds; no verification)."""
    d = bytes(data)
    n = len(d)
    if n > MAX_QUOTE_SIZE:
        raise EvidenceParseError(
            f"{n} bytes is larger than any DCAP quote ({MAX_QUOTE_SIZE})",
            format="tdx",
            offset=0,
            code="tdx.parse.too_large",
        )
    header = parse_header(d)
    fmt = _fmt_for(header.tee_type)
    # Header checks that decide the layout.
    if header.tee_type not in (TEE_TYPE_SGX, TEE_TYPE_TDX):
        raise _unsupported(
            f"TEE type {header.tee_type:#x} is not SGX or TDX", "tdx.unsupported.tee_type"
        )
    if header.tee_type == TEE_TYPE_SGX and header.version != 3:
        raise _unsupported(
            f"SGX quote version {header.version} is not supported (only 3)",
            "sgx.unsupported.version",
        )
    if header.tee_type == TEE_TYPE_TDX and header.version not in (4, 5):
        raise _unsupported(
            f"TDX quote version {header.version} is not supported (4 or 5)",
            "tdx.unsupported.version",
        )
    if header.att_key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise _unsupported(
            f"attestation key type {header.att_key_type} is not supported (2, ECDSA-256 P-256)",
            f"{fmt}.unsupported.att_key_type",
        )
    pos = HEADER_SIZE
    # Body.
    if header.version == 5:
        if n - pos < 6:
            raise _short(fmt, "body_descriptor", pos, 6, n - pos)
        body_type = _u16(d, pos)
        body_size = _u32(d, pos + 2)
        if body_type not in (BODY_TD10, BODY_TD15):
            raise _unsupported(
                f"quote v5 body type {body_type} is not supported (2 TD 1.0, 3 TD 1.5)",
                "tdx.unsupported.body_type",
            )
        if body_size != _BODY_SIZES[body_type]:
            raise EvidenceParseError(
                f"body size {body_size} does not match body type {body_type} "
                f"({_BODY_SIZES[body_type]})",
                format=fmt,
                offset=pos + 2,
                field="body_size",
            )
        pos += 6
    elif header.version == 4:
        body_type = BODY_TD10
    else:
        body_type = BODY_SGX
    size = _BODY_SIZES[body_type]
    if n - pos < size + 4:
        raise _short(fmt, "body", pos, size + 4, n - pos)
    body_raw = d[pos : pos + size]
    body: TdReport | EnclaveReport = (
        EnclaveReport.parse(body_raw) if body_type == BODY_SGX else TdReport.parse(body_raw)
    )
    pos += size
    signed_len = pos
    # Signature data.
    sig_len = _u32(d, pos)
    pos += 4
    if n - pos < sig_len:
        raise _short(fmt, "signature_data", pos, sig_len, n - pos)
    end = pos + sig_len
    trailing = n - end
    if sig_len < 128:
        raise _short(fmt, "signature_data", pos, 128, sig_len)
    signature = d[pos : pos + 64]
    att_key = d[pos + 64 : pos + 128]
    pos += 128
    if header.version == 3:
        qe_report, qe_sig, auth, cert_type, cert_data = _qe_report_cert_data(d, pos, end, fmt)
    else:
        if end - pos < 6:
            raise _short(fmt, "cert_data", pos, 6, end - pos)
        outer_type = _u16(d, pos)
        outer_size = _u32(d, pos + 2)
        pos += 6
        if end - pos < outer_size:
            raise _short(fmt, "cert_data", pos, outer_size, end - pos)
        if pos + outer_size != end:
            raise EvidenceParseError(
                f"{end - pos - outer_size} unexpected bytes after the certification data",
                format=fmt,
                offset=pos + outer_size,
                field="signature_data",
            )
        if outer_type != CERT_DATA_QE_REPORT:
            raise _unsupported(
                f"certification data type {outer_type} is not supported in a v{header.version} "
                "quote (only 6, QE report certification data)",
                f"{fmt}.unsupported.cert_data_type",
            )
        qe_report, qe_sig, auth, cert_type, cert_data = _qe_report_cert_data(d, pos, end, fmt)
    return Quote(
        header,
        body_type,
        body,
        d[:signed_len],
        signature,
        att_key,
        qe_report,
        qe_sig,
        auth,
        cert_type,
        cert_data,
        trailing,
    )

"""The configfs-tsm attester: TDX quotes and SEV-SNP reports from a Linux (>= 6.7) guest.

The kernel interface (``Documentation/ABI/testing/configfs-tsm-report``,
``drivers/virt/coco/guest/report.c``, ``fs/configfs/file.c``) lives under
``/sys/kernel/config/tsm/report``. One request is::

    mkdir <root>/<name>                 a private report instance
    read  <name>/generation             g0 (text "%lu\\n"; counts every committed write)
    write <name>/inblob                 exactly 64 bytes of REPORT_DATA (EFBIG above 64)
    write <name>/privlevel              optional, SNP only: VMPL privlevel_floor..3
    read  <name>/outblob                the report is generated synchronously by this read
    read  <name>/provider               "sev_guest" or "tdx_guest": names the outblob format
    read  <name>/auxblob                SNP only, optional: the GHCB certificate table
    read  <name>/generation             must be g0 + number of writes, else someone raced us
    rmdir <name>                        always, also on failure

A plain directory cannot imitate this (the report is made on read), so every file operation
goes through a :class:`TsmFileOps` object: :class:`OsTsmFileOps` for the real kernel, and
:class:`atls.testing.fake_tsm.FakeTsm` (an in-memory model of the kernel) in tests.

Binary attributes are buffered by configfs and committed when the file is closed; the kernel
ignores the commit's result, so a failed ``inblob`` commit is invisible except through
``generation``. That is why the generation check counts the writes from before the first one.

Errors are :class:`~atls.errors.AttesterError` with these stable codes:

=============================  ================================================================
``tsm.unavailable``            the report root does not exist (configfs not mounted at
                               ``/sys/kernel/config``, kernel < 6.7, or no ``tsm`` support)
``tsm.permission``             EACCES / EPERM (configfs-tsm needs root, or CAP_SYS_ADMIN)
``tsm.no_provider``            ENXIO: no TSM provider registered (not a TDX / SNP guest)
``tsm.inblob_size``            report_data is not exactly 64 bytes (EFBIG from the kernel above
                               64; the TDX and SNP providers need exactly 64)
``tsm.privlevel``              EINVAL writing ``privlevel`` (below ``privlevel_floor``)
``tsm.privlevel_unsupported``  ``privlevel`` requested but the provider has no such attribute
``tsm.invalid_request``        EINVAL reading ``outblob`` (firmware rejected the request)
``tsm.busy``                   EBUSY until ``timeout`` expired (TDX quote still in flight)
``tsm.timeout``                ETIMEDOUT: the host did not answer the quote request in time
``tsm.generation_race``        another writer changed the report on every one of
                               ``max_attempts`` attempts
``tsm.provider_mismatch``      ``provider`` is not ``expected_provider`` (or changed)
``tsm.provider_unsupported``   a provider whose outblob format atls does not know
``tsm.blob_too_large``         EFBIG, or a blob above the read cap (``max_blob``)
``tsm.empty_outblob``          the kernel returned an empty report
``tsm.report_data_mismatch``   the report does not carry the REPORT_DATA we wrote
``tsm.auxblob``                the SNP certificate table is malformed
``tsm.protocol``               an attribute is missing or has unexpected content
``tsm.rmdir``                  the report directory could not be removed
``tsm.io``                     any other OS error
=============================  ================================================================
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509

from atls._bytes import Reader
from atls.collateral._bundle import Collateral
from atls.errors import AttesterError, ConfigurationError, EvidenceParseError

__all__ = [
    "CERT_TABLE_ENTRY_SIZE",
    "DEFAULT_ROOT",
    "GUID_ARK",
    "GUID_ASK",
    "GUID_CRL",
    "GUID_VCEK",
    "GUID_VLEK",
    "INBLOB_SIZE",
    "PRIVLEVEL_MAX",
    "PROVIDER_FORMATS",
    "CertTable",
    "CertTableEntry",
    "ConfigfsTsmAttester",
    "OsTsmFileOps",
    "TsmFileOps",
    "TsmReport",
    "build_cert_table",
    "parse_cert_table",
]

DEFAULT_ROOT: Final = "/sys/kernel/config/tsm/report"

#: TSM_REPORT_INBLOB_MAX; the TDX and SNP providers require exactly this many bytes.
INBLOB_SIZE: Final = 64
#: TSM_REPORT_PRIVLEVEL_MAX (SNP VMPLs 0..3).
PRIVLEVEL_MAX: Final = 3
#: The kernel refuses blobs above TSM_REPORT_OUTBLOB_MAX (32 KiB); our own cap is above that.
DEFAULT_MAX_BLOB: Final = 64 * 1024
#: Text attributes (generation, provider) are at most one page.
TEXT_ATTR_MAX: Final = 4096

#: Provider name (``provider`` attribute) -> evidence format name of its ``outblob``.
PROVIDER_FORMATS: Final[dict[str, str]] = {
    "sev_guest": "sev-snp-report",
    "tdx_guest": "tdx-quote",
}

_CERT_TABLE_FORMAT: Final = "snp-cert-table"

# GUIDs of the SNP extended-report certificate table (AMD GHCB specification, "SNP Extended
# Guest Request"). On the wire they are the 16 bytes in the order the text is written
# (``uuid.UUID(text).bytes``, what ``uuid_parse`` produces), not the mixed-endian UEFI form.
GUID_VCEK: Final = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
GUID_VLEK: Final = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
GUID_ASK: Final = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
GUID_ARK: Final = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
GUID_CRL: Final = uuid.UUID("92f81bc3-5811-4d3d-97ff-d19f88dc67ea")

_CERT_GUIDS: Final = (GUID_VCEK, GUID_VLEK, GUID_ASK, GUID_ARK)  # leaf first
_GUID_NAMES: Final = {
    GUID_VCEK: "vcek",
    GUID_VLEK: "vlek",
    GUID_ASK: "ask",
    GUID_ARK: "ark",
    GUID_CRL: "crl",
}

CERT_TABLE_ENTRY_SIZE: Final = 24  # GUID[16] || offset u32 LE || length u32 LE


# --------------------------------------------------------------------------------------------
# The SNP certificate table (auxblob)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertTableEntry:
    """One entry of the certificate table: its GUID and the bytes it points to."""

    guid: uuid.UUID
    data: bytes

    @property
    def name(self) -> str | None:
        """``vcek``, ``vlek``, ``ask``, ``ark``, ``crl``, or None for a GUID atls does not know."""
        return _GUID_NAMES.get(self.guid)


@dataclass(frozen=True)
class CertTable:
    """A parsed certificate table. Every entry is kept, known or not, in table order."""

    entries: tuple[CertTableEntry, ...] = ()

    def get(self, guid: uuid.UUID) -> bytes | None:
        for e in self.entries:
            if e.guid == guid:
                return e.data
        return None

    @property
    def unknown(self) -> tuple[CertTableEntry, ...]:
        """Entries whose GUID atls does not know (not put into collateral, but not hidden)."""
        return tuple(e for e in self.entries if e.name is None)

    def collateral(self, *, source: str = "configfs-tsm:auxblob") -> Collateral:
        """VCEK/VLEK, ASK, ARK (leaf first) as DER certificates, and the CRL if present."""
        certs = tuple(d for g in _CERT_GUIDS if (d := self.get(g)) is not None)
        crl = self.get(GUID_CRL)
        return Collateral(
            certificates=certs, crls=(crl,) if crl is not None else (), sources=(source,)
        )


def _check_der(data: bytes, guid: uuid.UUID, offset: int) -> None:
    """The entry must be exactly one DER X.509 certificate (or CRL for the CRL GUID).

    asn1crypto is used (not cryptography) because AMD VCEKs carry serial number 0, which
    cryptography warns about and will refuse.
    """
    is_crl = guid == GUID_CRL
    kind = "CRL" if is_crl else "certificate"
    try:
        if is_crl:
            crl = asn1_crl.CertificateList.load(data, strict=True)
            crl["tbs_cert_list"]["issuer"].native  # noqa: B018 - forces the parse
            crl["signature"].native  # noqa: B018
        else:
            cert = asn1_x509.Certificate.load(data, strict=True)
            tbs = cert["tbs_certificate"]
            tbs["subject"].native  # noqa: B018 - forces the parse
            tbs["subject_public_key_info"].dump()
            cert["signature_value"].native  # noqa: B018
    except Exception as e:  # asn1crypto raises ValueError, TypeError, KeyError... on junk
        raise EvidenceParseError(
            f"entry {guid} is not a DER {kind}: {e}",
            format=_CERT_TABLE_FORMAT,
            offset=offset,
            field=_GUID_NAMES.get(guid, str(guid)),
        ) from e


def parse_cert_table(blob: bytes, *, check_der: bool = True) -> CertTable:
    """Parse the SNP extended-report certificate table (the configfs ``auxblob``).

    The host (hypervisor) writes this table, so it is untrusted input: every offset and
    length is checked, and any malformation raises
    :class:`~atls.errors.EvidenceParseError` (format ``snp-cert-table``). An empty blob
    means "no certificates" (the kernel exposes an empty ``auxblob`` when the host gave
    none).
    """
    blob = bytes(blob)
    if not blob:
        return CertTable()
    r = Reader(blob, _CERT_TABLE_FORMAT)
    raw: list[tuple[uuid.UUID, int, int, int]] = []
    # 1. Entries of GUID[16] || offset u32 || length u32, up to an all-zero terminator entry.
    #    The loop is bounded by the blob: each entry consumes 24 bytes or raises.
    while True:
        at = r.pos
        guid_bytes = r.bytes(16, "guid")
        offset = r.u32("offset")
        length = r.u32("length")
        if not any(guid_bytes) and offset == 0 and length == 0:
            break
        # 2. A null GUID is only allowed in the terminator.
        if not any(guid_bytes):
            raise EvidenceParseError(
                "null GUID in a non-terminating entry",
                format=_CERT_TABLE_FORMAT,
                offset=at,
                field="guid",
            )
        raw.append((uuid.UUID(bytes=guid_bytes), offset, length, at))
    header_end = r.pos
    entries: list[CertTableEntry] = []
    seen: set[uuid.UUID] = set()
    for guid, offset, length, at in raw:
        # 3. Each GUID at most once (two VCEKs would be ambiguous).
        if guid in seen:
            raise EvidenceParseError(
                f"duplicate entry for {guid}", format=_CERT_TABLE_FORMAT, offset=at, field="guid"
            )
        seen.add(guid)
        # 4. The data lies after the table (terminator included) and inside the blob.
        if offset < header_end:
            raise EvidenceParseError(
                f"entry {guid} points into the table (offset {offset} < {header_end})",
                format=_CERT_TABLE_FORMAT,
                offset=at + 16,
                field="offset",
            )
        if length == 0:
            raise EvidenceParseError(
                f"entry {guid} is empty", format=_CERT_TABLE_FORMAT, offset=at + 20, field="length"
            )
        if offset + length > len(blob):
            raise EvidenceParseError(
                f"entry {guid} ends at {offset + length}, past the {len(blob)}-byte blob",
                format=_CERT_TABLE_FORMAT,
                offset=at + 20,
                field="length",
            )
        data = blob[offset : offset + length]
        # 5. Known GUIDs must hold DER (certificates; the CRL entry a CRL). Unknown GUIDs are
        #    kept as opaque bytes.
        if check_der and guid in _GUID_NAMES:
            _check_der(data, guid, offset)
        entries.append(CertTableEntry(guid, data))
    return CertTable(tuple(entries))


def build_cert_table(entries: Sequence[tuple[uuid.UUID | str, bytes]]) -> bytes:
    """Encode a certificate table as a host would: entries, zero terminator, then the data.

    Used by the in-memory fake and by tests; :func:`parse_cert_table` reads it back.
    """
    n = len(entries)
    if n == 0:
        return b""
    header_size = (n + 1) * CERT_TABLE_ENTRY_SIZE
    header = bytearray()
    body = bytearray()
    for g, data in entries:
        guid = g if isinstance(g, uuid.UUID) else uuid.UUID(g)
        header += guid.bytes
        header += (header_size + len(body)).to_bytes(4, "little")
        header += len(data).to_bytes(4, "little")
        body += data
    header += bytes(CERT_TABLE_ENTRY_SIZE)
    return bytes(header + body)


# --------------------------------------------------------------------------------------------
# File operations
# --------------------------------------------------------------------------------------------


class TsmFileOps(Protocol):
    """The four file operations the attester needs. Failures raise :class:`OSError` with the
    kernel's errno (``FileNotFoundError`` for ENOENT...)."""

    def mkdir(self, path: str) -> None: ...

    def rmdir(self, path: str) -> None: ...

    def read_bytes(self, path: str, limit: int) -> bytes:
        """The whole content, read in one open; OSError(EFBIG) if it exceeds ``limit``."""
        ...

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` in one open (configfs commits binary attributes on close)."""
        ...


class OsTsmFileOps:
    """:class:`TsmFileOps` on the real file system with ``os`` calls (no buffering)."""

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o700)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def read_bytes(self, path: str, limit: int) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            chunks: list[bytes] = []
            total = 0
            while True:
                # configfs produces the whole blob on the first read; ask for one byte more
                # than the cap so an oversized blob is detected without reading it all.
                chunk = os.read(fd, limit + 1 - total)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise OSError(errno.EFBIG, f"more than {limit} bytes", path)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def write_bytes(self, path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            view = memoryview(data)
            while True:
                n = os.write(fd, view)
                view = view[n:]
                if not view:
                    break
        finally:
            os.close(fd)


# --------------------------------------------------------------------------------------------
# The attester
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TsmReport:
    """Everything one configfs-tsm request returned."""

    provider: str
    outblob: bytes
    auxblob: bytes | None
    generation: int
    privlevel: int | None


class _Race(Exception):
    """Internal: the generation check failed on this attempt (retried)."""


class _Busy(Exception):
    """Internal: EBUSY on this attempt (retried until the deadline)."""


_MAX_BUSY_RETRIES: Final = 1000  # a hard stop even if the injected clock never advances
_GENERATION_RE: Final = re.compile(rb"\A([0-9]{1,20})\n?\Z")
_PROVIDER_RE: Final = re.compile(rb"\A([A-Za-z0-9_.-]{1,64})\n?\Z")


def _parse_provider(raw: bytes) -> str:
    m = _PROVIDER_RE.match(raw)
    if m is None:
        raise AttesterError(f"unexpected provider value {raw[:32]!r}", code="tsm.protocol")
    name = m.group(1).decode("ascii")
    if name not in PROVIDER_FORMATS:
        raise AttesterError(
            f"configfs-tsm provider {name!r} has an outblob format atls does not know",
            code="tsm.provider_unsupported",
        )
    return name


def _errno_code(e: OSError, step: str) -> tuple[str, str]:
    """(code, explanation) for an OSError raised at ``step``."""
    n = e.errno
    if n in (errno.EACCES, errno.EPERM):
        return "tsm.permission", "permission denied (configfs-tsm needs root)"
    if n == errno.ENXIO:
        return "tsm.no_provider", "no TSM provider registered (not a TDX / SEV-SNP guest?)"
    if n == errno.EFBIG:
        if step == "inblob":
            return "tsm.inblob_size", "inblob larger than 64 bytes"
        return "tsm.blob_too_large", f"{step} larger than the limit"
    if n == errno.EINVAL:
        if step == "privlevel":
            return "tsm.privlevel", "privlevel rejected (below privlevel_floor, or above 3)"
        if step in ("outblob", "auxblob"):
            return "tsm.invalid_request", "the provider rejected the report request"
    if n == errno.ETIMEDOUT:
        return "tsm.timeout", "the host did not answer the report request in time"
    if n == errno.ENOENT:
        if step == "privlevel":
            return "tsm.privlevel_unsupported", "the provider has no privlevel attribute"
        return "tsm.protocol", "missing (was the report directory removed by someone else?)"
    return "tsm.io", "I/O error"


class ConfigfsTsmAttester:
    """Evidence from the Linux configfs-tsm report interface (TDX ``tdx_guest``, SEV-SNP
    ``sev_guest``).

    ``expected_provider`` pins the provider (recommended in production: the evidence format
    is then fixed and checked on every request); otherwise the provider is probed once.
    ``privlevel`` (SNP only) is the VMPL the report is requested for. ``timeout`` bounds the
    retries on EBUSY (seconds); ``max_attempts`` bounds the retries after a generation race.
    Neither interrupts a single kernel call: a TDX GetQuote is bounded by the kernel itself.
    """

    def __init__(
        self,
        root: str = DEFAULT_ROOT,
        *,
        ops: TsmFileOps | None = None,
        expected_provider: str | None = None,
        privlevel: int | None = None,
        timeout: float = 30.0,
        max_attempts: int = 3,
        max_blob: int = DEFAULT_MAX_BLOB,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if expected_provider is not None and expected_provider not in PROVIDER_FORMATS:
            raise ConfigurationError(
                f"unknown configfs-tsm provider {expected_provider!r} "
                f"(known: {', '.join(sorted(PROVIDER_FORMATS))})",
                code="tsm.config",
            )
        if privlevel is not None:
            if isinstance(privlevel, bool) or not isinstance(privlevel, int):
                raise ConfigurationError("privlevel must be an int", code="tsm.config")
            if not 0 <= privlevel <= PRIVLEVEL_MAX:
                raise ConfigurationError(
                    f"privlevel must be 0..{PRIVLEVEL_MAX}, not {privlevel}", code="tsm.config"
                )
            if expected_provider == "tdx_guest":
                raise ConfigurationError(
                    "privlevel is an SEV-SNP (VMPL) option; tdx_guest has none",
                    code="tsm.config",
                )
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be >= 1", code="tsm.config")
        if timeout < 0:
            raise ConfigurationError("timeout must be >= 0", code="tsm.config")
        if max_blob < 1:
            raise ConfigurationError("max_blob must be >= 1", code="tsm.config")
        self.root = root.rstrip("/") or "/"
        self.ops: TsmFileOps = ops if ops is not None else OsTsmFileOps()
        self.expected_provider = expected_provider
        self.privlevel = privlevel
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_blob = max_blob
        self._sleep = sleep
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._provider: str | None = expected_provider
        self._collateral: Collateral | AttesterError | None = None
        self._cert_table: CertTable | None = None
        self.generated = 0

    # -- public API ----------------------------------------------------------------------

    @property
    def provider(self) -> str:
        """The provider name; probed once (mkdir, read ``provider``, rmdir) if not pinned."""
        with self._lock:
            known = self._provider
        if known is not None:
            return known
        name = self._probe_provider()
        with self._lock:
            if self._provider is None:
                self._provider = name
            return self._provider

    @property
    def format_name(self) -> str:
        """``sev-snp-report`` for ``sev_guest``, ``tdx-quote`` for ``tdx_guest``."""
        return PROVIDER_FORMATS[self.provider]

    def attest(self, report_data: bytes) -> bytes:
        """The provider's report over ``report_data`` (exactly 64 bytes)."""
        return self.report(report_data).outblob

    def collateral(self) -> Collateral:
        """SNP: the VCEK/VLEK, ASK, ARK (and CRL) from the certificate table of the latest
        request (one request with zero REPORT_DATA is made if there was none yet). Empty when
        the host provides no certificates. TDX: empty (the PCK chain is inside the quote)."""
        if self.provider != "sev_guest":
            return Collateral()
        with self._lock:
            cached = self._collateral
        if cached is None:
            self.report(bytes(INBLOB_SIZE))
            with self._lock:
                cached = self._collateral
        if isinstance(cached, AttesterError):
            raise AttesterError(cached.message, code=cached.code) from cached.__cause__
        assert cached is not None
        return cached

    @property
    def cert_table(self) -> CertTable | None:
        """The certificate table of the latest SNP request (None before one, or for TDX)."""
        with self._lock:
            return self._cert_table

    def report(self, report_data: bytes) -> TsmReport:
        """One full request, with retries on EBUSY (until ``timeout``) and on generation races
        (``max_attempts``). Raises :class:`AttesterError`."""
        if not isinstance(report_data, bytes | bytearray | memoryview):
            raise AttesterError("report_data must be bytes", code="tsm.inblob_size")
        report_data = bytes(report_data)
        if len(report_data) != INBLOB_SIZE:
            raise AttesterError(
                f"report_data must be exactly {INBLOB_SIZE} bytes, not {len(report_data)}",
                code="tsm.inblob_size",
            )
        deadline = self._monotonic() + self.timeout
        races = 0
        busy = 0
        while True:
            try:
                rep = self._attempt(report_data)
            except _Race as e:
                races += 1
                if races >= self.max_attempts:
                    raise AttesterError(
                        f"configfs-tsm report changed under us on {races} attempts ({e})",
                        code="tsm.generation_race",
                    ) from None
                continue
            except _Busy as e:
                busy += 1
                delay = min(0.05 * (2 ** min(busy, 5)), 1.0)
                if self._monotonic() + delay > deadline or busy > _MAX_BUSY_RETRIES:
                    raise AttesterError(
                        f"configfs-tsm busy for {self.timeout:g} s ({e})", code="tsm.busy"
                    ) from e.__cause__
                self._sleep(delay)
                continue
            self._remember(rep)
            return rep

    # -- one attempt ---------------------------------------------------------------------

    def _attempt(self, report_data: bytes) -> TsmReport:
        name = f"atls-{os.getpid()}-{secrets.token_hex(8)}"
        d = posixpath.join(self.root, name)
        # 1. mkdir a private report instance.
        self._mkdir(d)
        failed = True
        try:
            rep = self._request(d, report_data)
            failed = False
            return rep
        finally:
            # 10. rmdir, always. A failure to remove is reported only if nothing else failed.
            try:
                self.ops.rmdir(d)
            except OSError as e:
                if not failed:
                    raise AttesterError(
                        f"could not remove {d}: {e.strerror or e}", code="tsm.rmdir"
                    ) from e

    def _request(self, d: str, report_data: bytes) -> TsmReport:
        # 2. Generation before any write: every committed write increments it.
        g0 = self._generation(d)
        writes = 0
        # 3. inblob: exactly 64 bytes (committed on close; a failed commit shows in step 8).
        self._write(d, "inblob", report_data)
        writes += 1
        # 4. privlevel (SNP VMPL), text; EINVAL below privlevel_floor.
        if self.privlevel is not None:
            self._write(d, "privlevel", f"{self.privlevel}\n".encode("ascii"))
            writes += 1
        # 5. outblob: the report is generated by this read.
        out = self._read(d, "outblob", self.max_blob)
        # 6. provider names the outblob format; it must be the expected (or probed) one.
        provider = self._read_provider(d)
        # 7. auxblob (SNP only, optional): the certificate table.
        aux: bytes | None = None
        if provider == "sev_guest":
            aux = self._read(d, "auxblob", self.max_blob, optional=True)
        # 8. Generation after the reads: exactly our writes, or someone raced us (or our
        #    inblob commit failed) and the report may not be over our REPORT_DATA.
        g1 = self._generation(d)
        if g1 != g0 + writes:
            raise _Race(f"generation {g0} -> {g1}, expected {g0 + writes}")
        # 9. The report itself: non-empty, and carrying our REPORT_DATA where its layout is
        #    known (SNP report; TDX quote v4/v5). A DICE-based TDX CWT quote is not inspected.
        if not out:
            raise AttesterError("the kernel returned an empty outblob", code="tsm.empty_outblob")
        echoed = _echoed_report_data(provider, out)
        if echoed is not None and echoed != report_data:
            raise AttesterError(
                f"the {provider} report does not carry the REPORT_DATA written to inblob",
                code="tsm.report_data_mismatch",
            )
        return TsmReport(provider, out, aux, g1, self.privlevel)

    def _remember(self, rep: TsmReport) -> None:
        table: CertTable | None = None
        coll: Collateral | AttesterError | None = None
        if rep.provider == "sev_guest":
            try:
                table = parse_cert_table(rep.auxblob or b"")
                coll = table.collateral()
            except EvidenceParseError as e:
                # The report itself is fine; the error surfaces from collateral().
                err = AttesterError(
                    f"malformed SNP certificate table in auxblob: {e.message}", code="tsm.auxblob"
                )
                err.__cause__ = e
                coll = err
        with self._lock:
            self.generated += 1
            if self._provider is None:
                self._provider = rep.provider
            self._cert_table = table
            if coll is not None:
                self._collateral = coll

    # -- primitives with errno translation -------------------------------------------------

    def _fail(self, e: OSError, step: str, path: str) -> AttesterError:
        code, why = _errno_code(e, step)
        return AttesterError(f"configfs-tsm {step} ({path}): {why}: {e.strerror or e}", code=code)

    def _mkdir(self, d: str) -> None:
        try:
            self.ops.mkdir(d)
        except FileNotFoundError as e:
            raise AttesterError(
                f"{self.root} does not exist: configfs is not mounted at /sys/kernel/config, "
                "or the kernel has no configfs-tsm report support (Linux >= 6.7)",
                code="tsm.unavailable",
            ) from e
        except OSError as e:
            raise self._fail(e, "mkdir", d) from e

    def _write(self, d: str, attr: str, data: bytes) -> None:
        path = posixpath.join(d, attr)
        try:
            self.ops.write_bytes(path, data)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise _Busy(f"EBUSY writing {attr}") from e
            raise self._fail(e, attr, path) from e

    def _read(self, d: str, attr: str, limit: int, *, optional: bool = False) -> bytes | None:
        path = posixpath.join(d, attr)
        try:
            data = self.ops.read_bytes(path, limit)
        except FileNotFoundError:
            if optional:
                return None
            raise AttesterError(
                f"configfs-tsm attribute {path} is missing", code="tsm.protocol"
            ) from None
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise _Busy(f"EBUSY reading {attr}") from e
            raise self._fail(e, attr, path) from e
        if len(data) > limit:  # an ops implementation that ignored the limit
            raise AttesterError(f"{attr} larger than {limit} bytes", code="tsm.blob_too_large")
        return data

    def _text(self, d: str, attr: str) -> bytes:
        data = self._read(d, attr, TEXT_ATTR_MAX)
        assert data is not None
        return data

    def _generation(self, d: str) -> int:
        raw = self._text(d, "generation")
        m = _GENERATION_RE.match(raw)
        if m is None:
            raise AttesterError(f"unexpected generation value {raw[:32]!r}", code="tsm.protocol")
        return int(m.group(1))

    def _read_provider(self, d: str) -> str:
        name = _parse_provider(self._text(d, "provider"))
        with self._lock:
            want = self._provider
        if want is not None and name != want:
            raise AttesterError(
                f"configfs-tsm provider is {name!r}, expected {want!r}",
                code="tsm.provider_mismatch",
            )
        if name == "tdx_guest" and self.privlevel is not None:
            raise AttesterError(
                "privlevel was requested but the provider is tdx_guest",
                code="tsm.privlevel_unsupported",
            )
        return name

    def _probe_provider(self) -> str:
        d = posixpath.join(self.root, f"atls-{os.getpid()}-{secrets.token_hex(8)}")
        self._mkdir(d)
        failed = True
        try:
            raw = self._text(d, "provider")
            failed = False
        finally:
            try:
                self.ops.rmdir(d)
            except OSError as e:
                if not failed:
                    raise AttesterError(
                        f"could not remove {d}: {e.strerror or e}", code="tsm.rmdir"
                    ) from e
        return _parse_provider(raw)


# SNP ATTESTATION_REPORT: REPORT_DATA at 0x50..0x90 in every version (AMD SEV-SNP ABI, Table
# "ATTESTATION_REPORT Structure"). TDX quote: 48-byte header; v4 TD report body at 48 with
# REPORTDATA at body offset 520; v5 has a 2-byte body type and 4-byte body size first.
_SNP_REPORT_DATA: Final = slice(0x50, 0x90)
_TDX_TEE_TYPE: Final = 0x81


def _echoed_report_data(provider: str, out: bytes) -> bytes | None:
    """REPORT_DATA as carried by ``out``, or None when the layout is not one atls knows."""
    if provider == "sev_guest":
        # The sev_guest outblob is always a raw ATTESTATION_REPORT (the SVSM path, which
        # hashes the nonce, is only taken when service_provider is written; we never do).
        return out[_SNP_REPORT_DATA] if len(out) >= _SNP_REPORT_DATA.stop else b""
    if provider == "tdx_guest" and len(out) >= 48:
        version = int.from_bytes(out[0:2], "little")
        tee_type = int.from_bytes(out[4:8], "little")
        if tee_type != _TDX_TEE_TYPE:
            return None
        start = {4: 48 + 520, 5: 48 + 6 + 520}.get(version)
        if start is None:
            return None
        return out[start : start + INBLOB_SIZE]
    return None

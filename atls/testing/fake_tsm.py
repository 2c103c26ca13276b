"""An in-memory model of the Linux configfs-tsm report interface, for tests.

:class:`FakeTsm` implements :class:`atls.attest.configfs_tsm.TsmFileOps`, so a
:class:`~atls.attest.configfs_tsm.ConfigfsTsmAttester` built with ``ops=FakeTsm(...)`` runs
its real request sequence against it. The model follows the kernel sources
(``drivers/virt/coco/guest/report.c``, ``fs/configfs/file.c``, the ``sev-guest`` and
``tdx-guest`` providers):

* ``mkdir <root>/<name>`` creates a report instance whose attribute files depend on the
  provider (``tdx_guest``: generation, provider, inblob, outblob; ``sev_guest`` adds
  privlevel, privlevel_floor and auxblob). ENXIO when no provider is registered, ENOENT when
  the root does not exist (configfs not mounted / kernel too old).
* ``inblob`` (binary, write-only): a write above 64 bytes fails with EFBIG; the buffered data
  is committed when the file is closed and the commit's result is ignored by configfs (even
  after a failed write, an empty inblob is committed). Each committed write increments
  ``generation``; a write that would make the counter lap the last read generation fails
  with EBUSY (silently, for inblob).
* ``privlevel`` (text, write-only): parsed like ``kstrtouint(buf, 0)``; EINVAL below
  ``privlevel_floor`` or above 3; ENXIO without a provider.
* ``outblob`` / ``auxblob`` (binary, read-only): the report is (re)generated on read when
  anything was written since the last generation; EINVAL if inblob was never written or the
  provider (TDX, SNP) gets other than 64 bytes; EFBIG above 32 KiB.
* ``provider`` and ``privlevel_floor``: ENXIO once the provider is unregistered.

Reports come from a pluggable ``generator`` (REPORT_DATA -> outblob; or
``privlevel_generator`` (REPORT_DATA, privlevel) -> outblob), e.g. the simulated
hierarchies of :mod:`atls.testing.snp` / :mod:`atls.testing.tdx` (see :meth:`FakeTsm.snp`
and :meth:`FakeTsm.tdx`). Knobs reproduce what a test cannot provoke otherwise: ``busy``
(EBUSY from a TDX quote still in flight), ``race`` (another process writes the same report
directory between our reads), ``report_errno`` (a provider failure such as ETIMEDOUT),
``rmdir_errno`` and ``permission_denied``.
"""

from __future__ import annotations

import errno
import os
import posixpath
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from asn1crypto import x509 as asn1_x509

from atls.attest.configfs_tsm import (
    DEFAULT_ROOT,
    GUID_ARK,
    GUID_ASK,
    GUID_CRL,
    GUID_VCEK,
    GUID_VLEK,
    INBLOB_SIZE,
    PRIVLEVEL_MAX,
    build_cert_table,
)
from atls.collateral._bundle import Collateral

__all__ = ["FakeReportDir", "FakeRequest", "FakeTsm", "snp_cert_entries"]

#: TSM_REPORT_OUTBLOB_MAX: configfs refuses larger binary attributes with EFBIG.
OUTBLOB_MAX: Final = 32 * 1024
_ULONG: Final = 1 << 64
_SIMPLE_ATTR_SIZE: Final = 4096

_READ_ONLY: Final = frozenset({"generation", "provider", "privlevel_floor", "outblob", "auxblob"})
_WRITE_ONLY: Final = frozenset({"inblob", "privlevel"})
_VISIBLE: Final[dict[str, frozenset[str]]] = {
    "tdx_guest": frozenset({"generation", "provider", "inblob", "outblob"}),
    "sev_guest": frozenset(
        {"generation", "provider", "privlevel", "privlevel_floor", "inblob", "outblob", "auxblob"}
    ),
}
_ALL_ATTRS: Final = _READ_ONLY | _WRITE_ONLY


def _oserror(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


@dataclass
class FakeReportDir:
    """The kernel's ``tsm_report_state`` for one report directory."""

    name: str
    attrs: frozenset[str]
    inblob: bytes = b""
    privlevel: int = 0
    write_generation: int = 0
    read_generation: int = 0
    outblob: bytes | None = None
    auxblob: bytes | None = None


@dataclass(frozen=True)
class FakeRequest:
    """One report generation the fake performed."""

    directory: str
    report_data: bytes
    privlevel: int


class _SnpHierarchy(Protocol):
    def report(self, report_data: bytes = ..., *, vmpl: int = ...) -> bytes: ...

    def collateral(self) -> Collateral: ...


class _TdxHierarchy(Protocol):
    def quote(self, report_data: bytes) -> bytes: ...


def _kstrtouint(buf: bytes) -> int:
    """``kstrtouint(buf, 0, &val)``: optional '+', base from prefix, one trailing newline."""
    s = buf.decode("latin-1")
    if s.endswith("\n"):
        s = s[:-1]
    if s.startswith("+"):
        s = s[1:]
    base = 10
    if s[:2].lower() == "0x":
        base, s = 16, s[2:]
    elif s.startswith("0") and len(s) > 1:
        base, s = 8, s[1:]
    digits = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}[base]
    if not s or any(c not in digits for c in s):
        raise _KernelError(errno.EINVAL)
    value = int(s, base)
    if value >= 1 << 32:
        raise _KernelError(errno.ERANGE)
    return value


class _KernelError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class FakeTsm:
    """An in-memory configfs-tsm (see the module docstring). Thread-safe (one lock plays the
    kernel's ``tsm_rwsem``; reports are generated while holding it, as in the kernel)."""

    def __init__(
        self,
        root: str = DEFAULT_ROOT,
        *,
        provider: str | None = "sev_guest",
        generator: Callable[[bytes], bytes] | None = None,
        privlevel_generator: Callable[[bytes, int], bytes] | None = None,
        certificates: Sequence[tuple[uuid.UUID | str, bytes]] = (),
        auxblob: bytes | None = None,
        privlevel_floor: int = 0,
        mounted: bool = True,
    ) -> None:
        if generator is not None and privlevel_generator is not None:
            raise ValueError("give generator or privlevel_generator, not both")
        if provider is not None and generator is None and privlevel_generator is None:
            raise ValueError("a registered provider needs a report generator")
        self.root = root.rstrip("/") or "/"
        self.provider = provider
        self.generator = generator
        self.privlevel_generator = privlevel_generator
        self.auxblob_template = (
            auxblob if auxblob is not None else build_cert_table(list(certificates))
        )
        self.privlevel_floor = privlevel_floor
        self.mounted = mounted
        # Knobs.
        self.busy = 0  #: the next N report generations fail with EBUSY (TDX quote in flight)
        self.race = 0  #: after the next N outblob reads, another process rewrites inblob
        self.report_errno: int | None = None  #: the next report generation fails with this
        self.rmdir_errno: int | None = None  #: every rmdir fails with this (dir is kept)
        self.permission_denied = False  #: every operation fails with EACCES
        # Records.
        self.dirs: dict[str, FakeReportDir] = {}
        self.calls: list[tuple[str, str]] = []
        self.requests: list[FakeRequest] = []
        self.created: list[str] = []
        self.removed: list[str] = []
        self._lock = threading.RLock()

    # -- convenience constructors -------------------------------------------------------

    @classmethod
    def snp(cls, hierarchy: _SnpHierarchy, **kwargs: Any) -> FakeTsm:
        """An SEV-SNP guest whose reports are signed by ``hierarchy`` (e.g.
        :class:`atls.testing.snp.FakeAmd`) at the VMPL written to ``privlevel`` (like the
        firmware), and whose auxblob carries the hierarchy's VCEK/VLEK, ASK/ASVK, ARK and
        (first) CRL, in the certificate-table format of a host."""
        coll = hierarchy.collateral()
        entries: list[tuple[uuid.UUID | str, bytes]] = list(snp_cert_entries(coll.certificates))
        if coll.crls:
            entries.append((GUID_CRL, coll.crls[0]))
        kwargs.setdefault("certificates", entries)
        return cls(
            provider="sev_guest",
            privlevel_generator=lambda rd, vmpl: hierarchy.report(rd, vmpl=vmpl),
            **kwargs,
        )

    @classmethod
    def tdx(cls, hierarchy: _TdxHierarchy, **kwargs: Any) -> FakeTsm:
        """A TDX guest whose quotes come from ``hierarchy`` (e.g.
        :class:`atls.testing.tdx.FakeIntel`)."""
        return cls(provider="tdx_guest", generator=hierarchy.quote, **kwargs)

    # -- provider registration (module load / unload) ------------------------------------

    def unregister(self) -> None:
        """Like unloading the provider module: existing directories stay, operations ENXIO."""
        with self._lock:
            self.provider = None

    def register(self, provider: str, generator: Callable[[bytes], bytes]) -> None:
        with self._lock:
            self.provider = provider
            self.generator = generator
            self.privlevel_generator = None

    @property
    def live(self) -> list[str]:
        """Report directories that exist now (the attester must leave none behind)."""
        with self._lock:
            return sorted(self.dirs)

    # -- path handling --------------------------------------------------------------------

    def _split(self, path: str) -> list[str]:
        p = posixpath.normpath(path)
        if p == self.root:
            return []
        prefix = self.root if self.root.endswith("/") else self.root + "/"
        if not p.startswith(prefix):
            raise _oserror(errno.ENOENT, path)
        return p[len(prefix) :].split("/")

    def _attr(self, path: str) -> tuple[FakeReportDir, str]:
        if not self.mounted:
            raise _oserror(errno.ENOENT, path)
        parts = self._split(path)
        if len(parts) != 2 or parts[0] not in self.dirs:
            raise _oserror(errno.ENOENT, path)
        d = self.dirs[parts[0]]
        if parts[1] not in d.attrs:
            raise _oserror(errno.ENOENT, path)
        return d, parts[1]

    # -- TsmFileOps -------------------------------------------------------------------------

    def mkdir(self, path: str) -> None:
        with self._lock:
            self.calls.append(("mkdir", path))
            if self.permission_denied:
                raise _oserror(errno.EACCES, path)
            if not self.mounted:
                raise _oserror(errno.ENOENT, path)
            parts = self._split(path)
            if len(parts) != 1:
                # Inside a report item (not a group) or deeper: configfs refuses.
                raise _oserror(
                    errno.EPERM if parts and parts[0] in self.dirs else errno.ENOENT, path
                )
            name = parts[0]
            if name in self.dirs:
                raise _oserror(errno.EEXIST, path)
            # tsm_report_make_item(): ENXIO without a provider.
            if self.provider is None:
                raise _oserror(errno.ENXIO, path)
            attrs = _VISIBLE.get(self.provider, _ALL_ATTRS)
            self.dirs[name] = FakeReportDir(name, attrs)
            self.created.append(name)

    def rmdir(self, path: str) -> None:
        with self._lock:
            self.calls.append(("rmdir", path))
            if self.permission_denied:
                raise _oserror(errno.EACCES, path)
            if not self.mounted:
                raise _oserror(errno.ENOENT, path)
            parts = self._split(path)
            if len(parts) != 1 or parts[0] not in self.dirs:
                raise _oserror(errno.ENOENT, path)
            if self.rmdir_errno is not None:
                raise _oserror(self.rmdir_errno, path)
            del self.dirs[parts[0]]
            self.removed.append(parts[0])

    def read_bytes(self, path: str, limit: int) -> bytes:
        with self._lock:
            self.calls.append(("read", path))
            if self.permission_denied:
                raise _oserror(errno.EACCES, path)
            d, attr = self._attr(path)
            if attr in _WRITE_ONLY:
                raise _oserror(errno.EACCES, path)  # configfs open: no S_IRUGO
            try:
                data = self._show(d, attr)
            except _KernelError as e:
                raise _oserror(e.code, path) from None
            if len(data) > limit:
                raise _oserror(errno.EFBIG, path)
            if attr == "outblob" and self.race > 0:
                self.race -= 1
                self._concurrent_inblob_write(d)
            return data

    def write_bytes(self, path: str, data: bytes) -> None:
        with self._lock:
            self.calls.append(("write", path))
            if self.permission_denied:
                raise _oserror(errno.EACCES, path)
            d, attr = self._attr(path)
            if attr in _READ_ONLY:
                raise _oserror(errno.EACCES, path)  # configfs open: no S_IWUGO
            data = bytes(data)
            if attr == "inblob":
                self._write_inblob(d, data, path)
            else:
                self._write_privlevel(d, data, path)

    # -- kernel behaviour ------------------------------------------------------------------

    def _advance(self, d: FakeReportDir) -> None:
        """try_advance_write_generation()."""
        if d.write_generation == (d.read_generation - 1) % _ULONG:
            raise _KernelError(errno.EBUSY)
        d.write_generation = (d.write_generation + 1) % _ULONG

    def _write_inblob(self, d: FakeReportDir, data: bytes, path: str) -> None:
        # configfs_bin_write_iter(): above cb_max_size (64) -> EFBIG, nothing buffered; an
        # empty write returns EFAULT. Either way the write was "in progress", so the release
        # (close) commits the (empty) buffer, and its result is ignored.
        failure: int | None = None
        if len(data) > INBLOB_SIZE:
            failure, data = errno.EFBIG, b""
        elif not data:
            failure = errno.EFAULT
        try:
            self._advance(d)
            d.inblob = data
        except _KernelError:
            pass  # "result of ->release() is ignored"
        if failure is not None:
            raise _oserror(failure, path)

    def _write_privlevel(self, d: FakeReportDir, data: bytes, path: str) -> None:
        if not data:
            raise _oserror(errno.EFAULT, path)
        try:
            value = _kstrtouint(data[: _SIMPLE_ATTR_SIZE - 1])
            if self.provider is None:
                raise _KernelError(errno.ENXIO)
            if not self.privlevel_floor <= value <= PRIVLEVEL_MAX:
                raise _KernelError(errno.EINVAL)
            self._advance(d)
        except _KernelError as e:
            raise _oserror(e.code, path) from None
        d.privlevel = value

    def _show(self, d: FakeReportDir, attr: str) -> bytes:
        if attr == "generation":
            return f"{d.write_generation}\n".encode()
        if attr == "provider":
            if self.provider is None:
                raise _KernelError(errno.ENXIO)
            return f"{self.provider}\n".encode()
        if attr == "privlevel_floor":
            if self.provider is None:
                raise _KernelError(errno.ENXIO)
            return f"{self.privlevel_floor}\n".encode()
        blob = self._report(d, attr)
        # configfs_bin_read_iter(): the size query, then EFBIG above cb_max_size.
        if len(blob) > OUTBLOB_MAX:
            raise _KernelError(errno.EFBIG)
        return blob

    def _report(self, d: FakeReportDir, attr: str) -> bytes:
        """tsm_report_read(): cached if nothing was written since, else regenerate."""
        if not d.inblob:
            raise _KernelError(errno.EINVAL)
        if d.outblob is None or d.read_generation != d.write_generation:
            if self.provider is None:
                raise _KernelError(errno.ENXIO)
            d.outblob = d.auxblob = None
            self._report_new(d)
            d.read_generation = d.write_generation
        assert d.outblob is not None
        return d.outblob if attr == "outblob" else (d.auxblob or b"")

    def _report_new(self, d: FakeReportDir) -> None:
        """The provider's report_new()."""
        if self.busy > 0:
            self.busy -= 1
            raise _KernelError(errno.EBUSY)
        if self.provider in _VISIBLE and len(d.inblob) != INBLOB_SIZE:
            raise _KernelError(errno.EINVAL)
        if self.report_errno is not None:
            code, self.report_errno = self.report_errno, None
            raise _KernelError(code)
        self.requests.append(FakeRequest(d.name, d.inblob, d.privlevel))
        if self.privlevel_generator is not None:
            d.outblob = bytes(self.privlevel_generator(d.inblob, d.privlevel))
        else:
            assert self.generator is not None
            d.outblob = bytes(self.generator(d.inblob))
        if self.provider != "tdx_guest" and self.auxblob_template:
            d.auxblob = self.auxblob_template

    def _concurrent_inblob_write(self, d: FakeReportDir) -> None:
        """Another process writes 64 bytes to the same report's inblob."""
        try:
            self._advance(d)
            d.inblob = os.urandom(INBLOB_SIZE)
        except _KernelError:
            pass


def snp_cert_entries(certificates: Sequence[bytes]) -> list[tuple[uuid.UUID, bytes]]:
    """Assign certificate-table GUIDs to an SNP chain by its shape: the self-signed one is the
    ARK, the one that issues the leaf is the ASK, the leaf is the VCEK (VLEK if its subject
    says so). Raises ValueError for anything that is not such a chain."""
    parsed = []
    for der in certificates:
        c = asn1_x509.Certificate.load(der)
        tbs = c["tbs_certificate"]
        parsed.append((der, tbs["subject"].dump(), tbs["issuer"].dump(), c.subject.human_friendly))
    issuers_of_others = {i for _, s, i, _ in parsed if s != i}
    out: list[tuple[uuid.UUID, bytes]] = []
    roles: set[uuid.UUID] = set()
    for der, subject, issuer, human in parsed:
        if subject == issuer:
            role = GUID_ARK
        elif subject in issuers_of_others:
            role = GUID_ASK
        else:
            role = GUID_VLEK if "VLEK" in human.upper() else GUID_VCEK
        if role in roles:
            raise ValueError(f"two certificates for the same role ({role})")
        roles.add(role)
        out.append((role, der))
    order = {GUID_VCEK: 0, GUID_VLEK: 0, GUID_ASK: 1, GUID_ARK: 2}
    return sorted(out, key=lambda e: order[e[0]])

"""The TPM attester: quotes from a TPM 2.0 through tpm2-pytss (ESAPI) over any TCTI.

:class:`TpmAttester` connects to a TPM (``device:/dev/tpmrm0``, ``tabrmd``,
``swtpm:host=127.0.0.1,port=2321``...), then either loads a persistent AK (``ak_handle``) or
creates a fresh one: an ECC P-256 / ECDSA-SHA256 (or RSA-2048 / RSASSA-SHA256) restricted
signing key (fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign)
under the standard ECC storage root key of the owner hierarchy. The SRK is flushed once the
AK exists, and the AK itself is kept as a saved context (``TPM2_ContextSave``) that is loaded
for each quote and flushed right after, so between quotes the attester holds no transient
slot: a TPM without a resource manager (swtpm has three slots) stays usable by others and by
any number of attesters. The SRK's Name travels in the bundle (``akparents``), so a verifier
can recompute the quote's qualifiedSigner and bind the AK public area to it.

:meth:`TpmAttester.attest` takes the 64-byte atls binding, reduces it to the AK's nameAlg
digest size (:func:`atls.binding.tpm_qualifying_data`), quotes the configured PCRs of one
bank over it, reads the PCR values (re-reading until the PCR update counter is stable around
the quote, then checking them against the quote's digest), attaches the AK certificate chain
(if given), the TCG event log and the IMA list (if readable; the IMA list is cut to the
prefix that replays to the quoted PCR, since the kernel keeps appending), and returns the
``tpm-quote-bundle`` encoding (:mod:`atls.evidence.tpm`).

The AK is trusted by a verifier only if it is pinned there (``ak_name`` / ``ak_public``) or
certified: pass ``ak_cert=`` (the AK certificate, or the chain leaf first) or call
:meth:`TpmAttester.use_ak_certificates` once a CA has certified :attr:`TpmAttester.ak_public`.

Errors: :class:`~atls.errors.AttesterError` with codes ``attester.tpm.unavailable``
(tpm2-pytss missing), ``attester.tpm.connect``, ``attester.tpm.ak``, ``attester.tpm.quote``,
``attester.tpm.pcrs``, ``attester.tpm.report_data``, ``attester.tpm.closed``;
:class:`~atls.errors.ConfigurationError` (``attester.tpm.config``) for bad arguments.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Literal

from atls.binding import tpm_qualifying_data
from atls.collateral._bundle import Collateral
from atls.errors import AtlsError, AttesterError, ConfigurationError
from atls.evidence.tpm import (
    FORMAT_NAME,
    bundle_from_parts,
    hash_alg,
    hash_size,
    parse_attest,
    parse_public,
)

__all__ = ["DEFAULT_PCRS", "TpmAttester"]

log = logging.getLogger(__name__)

#: PCR 0..23: everything a TCG log or IMA may extend is covered by the quote.
DEFAULT_PCRS: tuple[int, ...] = tuple(range(24))
_MAX_LOG = 1 << 20
_MAX_IMA = 8 << 20
_PCR_READ_BATCH = 8  # TPM2_PCR_Read returns at most 8 digests per call
_RETRIES = 5


def _read_limited(path: str | os.PathLike[str] | None, limit: int, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        log.warning("%s %s is not readable (%s); quoting without it", what, path, e)
        return None
    if len(data) > limit:
        log.warning("%s %s is larger than %d bytes; quoting without it", what, path, limit)
        return None
    return data or None


class TpmAttester:
    """TPM 2.0 quotes as ``tpm-quote-bundle`` evidence (see the module docstring)."""

    format_name = FORMAT_NAME

    def __init__(
        self,
        tcti: str,
        *,
        pcrs: Sequence[int] = DEFAULT_PCRS,
        bank: str = "sha256",
        ak_cert: bytes | Sequence[bytes] | None = None,
        event_log_path: str | os.PathLike[str] | None = None,
        ima_log_path: str | os.PathLike[str] | None = None,
        ak_key: Literal["ecc", "rsa"] = "ecc",
        ak_handle: int | None = None,
    ) -> None:
        selected = sorted(set(pcrs))
        if not selected or any(not 0 <= i <= 23 for i in selected):
            raise ConfigurationError(
                f"pcrs must be PCR indices 0..23, got {list(pcrs)}", code="attester.tpm.config"
            )
        try:
            hash_alg(bank)
        except AtlsError as e:
            raise ConfigurationError(str(e), code="attester.tpm.config") from e
        if ak_key not in ("ecc", "rsa"):
            raise ConfigurationError(f"ak_key {ak_key!r}", code="attester.tpm.config")
        self.pcrs = tuple(selected)
        self.bank = bank
        self.event_log_path = event_log_path
        self.ima_log_path = ima_log_path
        self._ak_certs: tuple[bytes, ...] = ()
        if ak_cert is not None:
            self.use_ak_certificates([ak_cert] if isinstance(ak_cert, bytes) else ak_cert)
        self._lock = threading.Lock()
        self.generated = 0
        try:
            import tpm2_pytss as tss
            from tpm2_pytss import constants as tc
            from tpm2_pytss import types as tt
        except ImportError as e:
            raise AttesterError(
                f"tpm2-pytss is not available ({e}); install atls[tpm] and libtss2",
                code="attester.tpm.unavailable",
            ) from e
        self._tss: Any = tss
        self._tc: Any = tc
        self._tt: Any = tt
        try:
            self._esapi: Any = tss.ESAPI(tcti)
        except (tss.TSS2_Exception, ValueError, RuntimeError) as e:
            raise AttesterError(
                f"cannot open TPM TCTI {tcti!r}: {e}", code="attester.tpm.connect"
            ) from e
        self._ak: Any = None  # a persistent AK's ESYS_TR, or a transient AK's saved context
        self._ak_transient = ak_handle is None
        self.ak_parents: tuple[bytes, ...] = ()
        try:
            self._ak, public = (
                self._load_persistent(ak_handle) if ak_handle is not None else self._create(ak_key)
            )
        except Exception:
            self.close()
            raise
        self.ak_public: bytes = public
        ak = parse_public(public)
        self.ak_name: bytes = ak.name()
        self._digest_size = hash_size(ak.name_alg)

    # --- AK --------------------------------------------------------------------------------

    def _attrs(self, *names: str) -> Any:
        value = self._tc.TPMA_OBJECT(0)
        for n in names:
            value |= getattr(self._tc.TPMA_OBJECT, n)
        return value

    def _create(self, ak_key: str) -> tuple[Any, bytes]:
        tc, tt, e = self._tc, self._tt, self._esapi
        srk_attrs = self._attrs(
            "FIXEDTPM", "FIXEDPARENT", "SENSITIVEDATAORIGIN", "USERWITHAUTH", "RESTRICTED",
            "DECRYPT", "NODA",
        )  # fmt: skip
        ak_attrs = self._attrs(
            "FIXEDTPM", "FIXEDPARENT", "SENSITIVEDATAORIGIN", "USERWITHAUTH", "RESTRICTED",
            "SIGN_ENCRYPT",
        )  # fmt: skip
        template = "ecc256:ecdsa-sha256" if ak_key == "ecc" else "rsa2048:rsassa-sha256"
        srk = None
        try:
            srk_pub = tt.TPM2B_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=srk_attrs)
            srk, _, _, _, _ = e.create_primary(None, srk_pub, tc.ESYS_TR.OWNER)
            _, srk_name, _ = e.read_public(srk)
            self.ak_parents = (bytes(srk_name.marshal())[2:],)
            ak_tmpl = tt.TPM2B_PUBLIC.parse(template, objectAttributes=ak_attrs)
            # a signing key has no symmetric definition (parse() leaves aes128cfb there)
            if ak_key == "ecc":
                ak_tmpl.publicArea.parameters.eccDetail.symmetric.algorithm = tc.TPM2_ALG.NULL
            else:
                ak_tmpl.publicArea.parameters.rsaDetail.symmetric.algorithm = tc.TPM2_ALG.NULL
            priv, pub, _, _, _ = e.create(srk, None, ak_tmpl)
            handle = e.load(srk, priv, pub)
            self._flush(srk)
            srk = None
            try:
                saved = e.context_save(handle)
            finally:
                self._flush(handle)
        except self._tss.TSS2_Exception as err:
            raise AttesterError(f"cannot create the AK: {err}", code="attester.tpm.ak") from err
        finally:
            if srk is not None:
                self._flush(srk)
        return saved, bytes(pub.marshal())

    def _load_persistent(self, handle: int) -> tuple[Any, bytes]:
        try:
            tr = self._esapi.tr_from_tpmpublic(handle)
            pub, _, _ = self._esapi.read_public(tr)
        except self._tss.TSS2_Exception as err:
            raise AttesterError(
                f"cannot load the AK at handle {handle:#x}: {err}", code="attester.tpm.ak"
            ) from err
        return tr, bytes(pub.marshal())

    def _flush(self, handle: Any) -> None:
        try:
            self._esapi.flush_context(handle)
        except self._tss.TSS2_Exception as err:
            log.warning("could not flush TPM context: %s", err)

    def use_ak_certificates(self, chain: Sequence[bytes]) -> None:
        """Attach the AK certificate (leaf first, then intermediates) to future evidence."""
        certs = tuple(bytes(c) for c in chain)
        if not certs or any(not c.startswith(b"\x30") for c in certs):
            raise ConfigurationError(
                "ak_cert must be DER certificates (AK certificate first)",
                code="attester.tpm.config",
            )
        self._ak_certs = certs

    @property
    def ak_certificates(self) -> tuple[bytes, ...]:
        return self._ak_certs

    # --- quotes ----------------------------------------------------------------------------

    def _selection(self, indices: Sequence[int]) -> Any:
        return self._tt.TPML_PCR_SELECTION.parse(f"{self.bank}:{','.join(str(i) for i in indices)}")

    def _read_pcrs(self) -> tuple[int, dict[int, bytes]]:
        """(update counter, values); the counter is the one seen first."""
        values: dict[int, bytes] = {}
        counter: int | None = None
        for start in range(0, len(self.pcrs), _PCR_READ_BATCH):
            batch = self.pcrs[start : start + _PCR_READ_BATCH]
            upd, sel, digests = self._esapi.pcr_read(self._selection(batch))
            got = [bytes(d) for d in digests]
            if len(got) != len(batch) or sel.count != 1:
                raise AttesterError(
                    f"PCR_Read returned {len(got)} values for {len(batch)} PCRs of {self.bank}"
                    " (is the bank allocated?)",
                    code="attester.tpm.pcrs",
                )
            counter = upd if counter is None else counter
            if upd != counter:
                raise _PcrsChanged
            values.update(zip(batch, got, strict=True))
        assert counter is not None
        return counter, values

    def _quote_once(self, qualifying: bytes) -> tuple[Any, Any]:
        """TPM2_Quote with the AK (a transient AK is loaded for it and flushed after)."""
        handle = self._esapi.context_load(self._ak) if self._ak_transient else self._ak
        try:
            attest, sig = self._esapi.quote(handle, self._selection(self.pcrs), qualifying)
        finally:
            if self._ak_transient:
                self._flush(handle)
        return attest, sig

    def _quote(self, qualifying: bytes) -> tuple[bytes, bytes, dict[int, bytes]]:
        for _ in range(_RETRIES):
            try:
                before, values = self._read_pcrs()
                attest, sig = self._quote_once(qualifying)
                after, _ = self._read_pcrs()
            except _PcrsChanged:
                continue
            if before != after:
                continue  # a PCR changed around the quote: the values may not be the quoted ones
            raw = bytes(attest.marshal())[2:]  # TPM2B_ATTEST -> TPMS_ATTEST
            quoted = parse_attest(raw)
            h = hashlib.new(self._sig_hash(sig))
            for i in self.pcrs:
                h.update(values[i])
            if not hmac.compare_digest(h.digest(), quoted.pcr_digest):
                continue
            return raw, bytes(sig.marshal()), values
        raise AttesterError(
            f"the PCRs kept changing during {_RETRIES} quote attempts", code="attester.tpm.pcrs"
        )

    def _sig_hash(self, sig: Any) -> str:
        raw = bytes(sig.marshal())
        names = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}
        return names[int.from_bytes(raw[2:4], "big")]

    def _ima_prefix(self, raw: bytes | None, quoted: dict[int, bytes]) -> bytes | None:
        """The prefix of the IMA list that replays to the quoted IMA PCR (None if none)."""
        if raw is None:
            return None
        from atls.evidence.eventlog import IMA_PCR, encode_ima_binary, hash_bank, parse_ima

        if IMA_PCR not in quoted:
            return None
        try:
            entries = parse_ima(raw)
        except AtlsError as err:
            log.warning("IMA list does not parse (%s); quoting without it", err)
            return None
        size = len(quoted[IMA_PCR])
        reg = bytes(size)
        if reg == quoted[IMA_PCR]:
            return None
        if any(x.template_name == "ima" for x in entries):
            log.warning("IMA list uses the legacy 'ima' template; quoting without it")
            return None
        for n, entry in enumerate(entries, start=1):
            if entry.pcr != IMA_PCR:
                continue
            digest = (
                b"\xff" * size if entry.violation else hash_bank(self.bank, entry.template_data)
            )
            reg = hash_bank(self.bank, reg + digest)
            if reg == quoted[IMA_PCR]:
                return encode_ima_binary(entries[:n])
        log.warning("no prefix of the IMA list replays to the quoted PCR%d", IMA_PCR)
        return None

    def attest(self, report_data: bytes) -> bytes:
        """A ``tpm-quote-bundle`` whose extraData is the first digest-size bytes of
        ``report_data`` (1..64 bytes, normally the 64-byte atls-v1 binding)."""
        if not 1 <= len(report_data) <= 64:
            raise AttesterError(
                f"report_data must be 1..64 bytes, got {len(report_data)}",
                code="attester.tpm.report_data",
            )
        qualifying = tpm_qualifying_data(bytes(report_data), self._digest_size)
        with self._lock:
            if self._ak is None:
                raise AttesterError("the attester is closed", code="attester.tpm.closed")
            try:
                attest, sig, values = self._quote(qualifying)
            except self._tss.TSS2_Exception as err:
                raise AttesterError(f"TPM2_Quote failed: {err}", code="attester.tpm.quote") from err
            self.generated += 1
        tcg = _read_limited(self.event_log_path, _MAX_LOG, "event log")
        ima = self._ima_prefix(_read_limited(self.ima_log_path, _MAX_IMA, "IMA list"), values)
        return bundle_from_parts(
            attest=attest,
            signature=sig,
            ak_public=self.ak_public,
            pcrs={self.bank: values},
            ak_certs=self._ak_certs,
            ak_parents=self.ak_parents,
            event_log=tcg,
            ima_log=ima,
        )

    def collateral(self) -> Collateral:
        """Nothing to staple: the AK chain travels inside the bundle."""
        return Collateral()

    def close(self) -> None:
        """Flush the transient AK and close the TPM connection (idempotent)."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            if getattr(self, "_esapi", None) is None:
                return
            self._ak = None  # a saved context needs no flush; a persistent AK stays
            try:
                self._esapi.close()
            finally:
                self._esapi = None

    def __enter__(self) -> TpmAttester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PcrsChanged(Exception):
    """The PCR update counter moved between two PCR_Read calls."""

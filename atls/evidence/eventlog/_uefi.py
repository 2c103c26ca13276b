"""What UEFI events say, and when their data can be believed.

An event's type and data are not covered by the register; only its digest is. Event data is
evidence only where the event type defines the digest as a function of the data, and only
after that function is checked (TCG PC Client PFP section 10.4; measurement-algorithms.md
10.2 rule 5). :func:`event_data_verified` checks that function; :func:`platform_state`,
:func:`secure_boot_state` and :func:`efi_apps` read firmware facts from a log that has
already replayed to signed registers, checking every event they rely on.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from atls._bytes import Reader
from atls.errors import EvidenceParseError, UnsupportedEvidenceError, VerificationError
from atls.evidence.eventlog._algs import (
    EV_ACTION,
    EV_EFI_ACTION,
    EV_EFI_BOOT_SERVICES_APPLICATION,
    EV_EFI_GPT_EVENT,
    EV_EFI_VARIABLE_AUTHORITY,
    EV_EFI_VARIABLE_BOOT,
    EV_EFI_VARIABLE_BOOT2,
    EV_EFI_VARIABLE_DRIVER_CONFIG,
    EV_NONHOST_INFO,
    EV_OMIT_BOOT_DEVICE_EVENTS,
    EV_S_CRTM_VERSION,
    EV_SEPARATOR,
    hash_bank,
)
from atls.evidence.eventlog._tcg import FMT, TcgEvent

__all__ = [
    "CALLING_EFI_APPLICATION",
    "DATA_BOUND_TYPES",
    "EFI_GLOBAL_VARIABLE",
    "EFI_IMAGE_SECURITY_DATABASE",
    "EXIT_BOOT_SERVICES_INVOCATION",
    "PlatformState",
    "SecureBootState",
    "UefiVariable",
    "check_event_data",
    "efi_apps",
    "event_data_verified",
    "parse_uefi_variable",
    "platform_state",
    "secure_boot_state",
]

EFI_GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
EFI_IMAGE_SECURITY_DATABASE = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
CALLING_EFI_APPLICATION = b"Calling EFI Application from Boot Option"
EXIT_BOOT_SERVICES_INVOCATION = b"Exit Boot Services Invocation"
_SEPARATOR_DATA = (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff")
_SECURE_BOOT_VARS = {
    "SecureBoot": EFI_GLOBAL_VARIABLE,
    "PK": EFI_GLOBAL_VARIABLE,
    "KEK": EFI_GLOBAL_VARIABLE,
    "db": EFI_IMAGE_SECURITY_DATABASE,
    "dbx": EFI_IMAGE_SECURITY_DATABASE,
}

# Event types whose digest is H(event data) (EV_EFI_VARIABLE_BOOT: H(VariableData)).
DATA_BOUND_TYPES = frozenset(
    {
        EV_SEPARATOR,
        EV_ACTION,
        EV_EFI_ACTION,
        EV_S_CRTM_VERSION,
        EV_NONHOST_INFO,
        EV_OMIT_BOOT_DEVICE_EVENTS,
        EV_EFI_VARIABLE_DRIVER_CONFIG,
        EV_EFI_VARIABLE_BOOT,
        EV_EFI_VARIABLE_BOOT2,
        EV_EFI_VARIABLE_AUTHORITY,
        EV_EFI_GPT_EVENT,
    }
)


@dataclass(frozen=True)
class UefiVariable:
    """UEFI_VARIABLE_DATA: vendor GUID, UTF-16 name and the variable's bytes."""

    vendor_guid: uuid.UUID
    name: str
    data: bytes


def parse_uefi_variable(data: bytes, *, strict: bool = True) -> UefiVariable:
    """Parse UEFI_VARIABLE_DATA (16-byte GUID | u64 name chars | u64 data length | name | data).
    ``strict=False`` tolerates bytes after the structure."""
    r = Reader(data, FMT)
    guid = uuid.UUID(bytes_le=r.bytes(16, "VariableName"))
    name_chars = r.u64("UnicodeNameLength")
    data_len = r.u64("VariableDataLength")
    if name_chars > r.remaining // 2:
        raise r.error(f"UnicodeNameLength {name_chars} exceeds the event", field="UnicodeName")
    raw_name = r.bytes(2 * name_chars, "UnicodeName")
    value = r.bytes(data_len, "VariableData")
    if strict:
        r.expect_end("UEFI_VARIABLE_DATA")
    try:
        name = raw_name.decode("utf-16-le")
    except UnicodeDecodeError as e:
        raise EvidenceParseError(
            "variable name is not UTF-16", format=FMT, field="UnicodeName"
        ) from e
    return UefiVariable(guid, name, value)


def _preimages(event: TcgEvent) -> tuple[bytes, ...]:
    """What the digest may cover, for :data:`DATA_BOUND_TYPES` (empty for other types)."""
    if event.event_type not in DATA_BOUND_TYPES:
        return ()
    if event.event_type == EV_EFI_VARIABLE_BOOT:
        # The PC Client spec says H(VariableData) (OVMF does so); many PC firmwares hash the
        # whole UEFI_VARIABLE_DATA. Both bind the variable's value.
        try:
            return (parse_uefi_variable(event.data).data, event.data)
        except EvidenceParseError:
            return (event.data,)
    return (event.data,)


def event_data_verified(event: TcgEvent, bank: str) -> bool | None:
    """True/False: the digest does/does not match the event data; None: the event type
    does not bind its data (:data:`DATA_BOUND_TYPES`)."""
    pre = _preimages(event)
    if not pre:
        return None
    have = event.digest(bank)
    if have is None:
        raise UnsupportedEvidenceError(
            f"event at offset {event.offset:#x} has no {bank} digest", code="eventlog.bank"
        )
    return any(hmac.compare_digest(hash_bank(bank, p), have) for p in pre)


def _where(e: TcgEvent) -> str:
    return f"{e.type_name} in register {e.index} at offset {e.offset:#x}"


def check_event_data(events: Iterable[TcgEvent], *, bank: str) -> None:
    """Require every event of a data-bound type to match its data
    (:class:`VerificationError`, ``eventlog.event_data``)."""
    for e in events:
        if event_data_verified(e, bank) is False:
            raise VerificationError(
                f"{_where(e)}: digest does not match the event data", code="eventlog.event_data"
            )


def _is_separator(e: TcgEvent, bank: str) -> bool:
    """A valid separator; an event that only looks like one is an error (an attacker could
    relabel a separator to hide where pre-boot ends)."""
    digest = e.digest(bank)
    looks = digest is not None and any(
        hmac.compare_digest(digest, hash_bank(bank, s)) for s in _SEPARATOR_DATA
    )
    if e.event_type != EV_SEPARATOR and not looks:
        return False
    if e.event_type != EV_SEPARATOR:
        raise VerificationError(
            f"{_where(e)} carries a separator digest but is not EV_SEPARATOR",
            code="eventlog.event_data",
        )
    if e.data not in _SEPARATOR_DATA or not event_data_verified(e, bank):
        raise VerificationError(
            f"{_where(e)}: separator data does not match its digest", code="eventlog.event_data"
        )
    return True


@dataclass(frozen=True)
class PlatformState:
    """PCR 0 facts logged before its separator (all digest-checked)."""

    scrtm_version: bytes | None
    nonhost_info: bytes | None


def platform_state(events: Sequence[TcgEvent], *, bank: str, index: int = 0) -> PlatformState:
    """S-CRTM version and non-host info from PCR ``index`` up to its separator.

    Raises :class:`VerificationError` (``eventlog.event_data``) if either event's digest is
    not the hash of its data."""
    version: bytes | None = None
    nonhost: bytes | None = None
    for e in events:
        if e.index != index:
            continue
        if _is_separator(e, bank):
            break  # nothing after the separator describes the platform
        if e.event_type in (EV_S_CRTM_VERSION, EV_NONHOST_INFO):
            if not event_data_verified(e, bank):
                what = "S-CRTM version" if e.event_type == EV_S_CRTM_VERSION else "non-host info"
                raise VerificationError(
                    f"{what} event in PCR{index} does not match its digest (offset {e.offset:#x})",
                    code="eventlog.event_data",
                )
            if e.event_type == EV_S_CRTM_VERSION:
                version = e.data
            else:
                nonhost = e.data
    return PlatformState(version, nonhost)


@dataclass(frozen=True)
class SecureBootState:
    """Secure-boot configuration measured into PCR 7 (RTMR0 in TDX).

    ``variables`` holds SecureBoot/PK/KEK/db/dbx as measured before the separator;
    ``authorities`` the EV_EFI_VARIABLE_AUTHORITY events (certificates or hashes that
    verified loaded images) logged after it; ``quirks`` lists tolerated firmware bugs."""

    enabled: bool
    variables: Mapping[str, bytes]
    authorities: tuple[UefiVariable, ...]
    quirks: tuple[str, ...] = ()


def secure_boot_state(events: Sequence[TcgEvent], *, bank: str, index: int = 7) -> SecureBootState:
    """Read the secure-boot state from register ``index`` (7 for TPM logs; CC-MR 1 in a CCEL).

    Every variable event must match its digest; SecureBoot must hold exactly one byte; no
    variable may be measured twice, nor configuration after the separator. Raises
    :class:`VerificationError` (``eventlog.secure_boot``)."""
    variables: dict[str, bytes] = {}
    authorities: list[UefiVariable] = []
    quirks: list[str] = []
    seen_separator = False

    def fail(msg: str, e: TcgEvent) -> VerificationError:
        return VerificationError(f"{msg} ({_where(e)})", code="eventlog.secure_boot")

    for e in events:
        if e.index != index:
            continue
        if _is_separator(e, bank):
            if seen_separator:
                raise fail("second separator", e)
            seen_separator = True
            continue
        if e.event_type == EV_EFI_ACTION and e.data == b"UEFI Debug Mode":
            if not event_data_verified(e, bank):
                raise fail("EV_EFI_ACTION does not match its digest", e)
            raise fail("a UEFI debugger was present during boot", e)
        if e.event_type not in (EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_AUTHORITY):
            continue
        # 1. the digest must be H(UEFI_VARIABLE_DATA) before the data means anything
        data, strict = e.data, True
        if not event_data_verified(e, bank):
            d = e.digest(bank)
            if (
                e.event_type == EV_EFI_VARIABLE_AUTHORITY
                and e.data
                and d is not None
                and hmac.compare_digest(hash_bank(bank, e.data[:-1]), d)
            ):
                # Known shim bug (fixed in rhboot/shim 8a27a480): an authority event with one
                # byte more than was measured. Only the measured bytes are read.
                data, strict = e.data[:-1], False
                quirks.append(f"shim authority event with an unmeasured last byte ({_where(e)})")
            else:
                raise fail("variable event does not match its digest", e)
        try:
            var = parse_uefi_variable(data, strict=strict)
        except EvidenceParseError as err:
            raise fail(f"malformed UEFI_VARIABLE_DATA: {err.message}", e) from err
        if e.event_type == EV_EFI_VARIABLE_AUTHORITY:
            # 2. authorities are recorded as the images are verified, after the separator
            if not seen_separator:
                raise fail("EV_EFI_VARIABLE_AUTHORITY before the separator", e)
            authorities.append(var)
            continue
        # 3. configuration variables: only before the separator, each once
        if seen_separator:
            raise fail(f"variable {var.name} measured after the separator", e)
        want_guid = _SECURE_BOOT_VARS.get(var.name)
        if want_guid is None or var.vendor_guid != want_guid:
            continue
        if var.name in variables:
            raise fail(f"variable {var.name} measured twice", e)
        if var.name == "SecureBoot" and len(var.data) != 1:
            raise fail(f"SecureBoot variable data length is {len(var.data)}, expected 1", e)
        variables[var.name] = var.data
    return SecureBootState(
        variables.get("SecureBoot") == b"\x01",
        MappingProxyType(variables),
        tuple(authorities),
        tuple(quirks),
    )


def efi_apps(
    events: Sequence[TcgEvent], *, bank: str, app_index: int = 4, exit_index: int = 5
) -> tuple[bytes, ...] | None:
    """Digests of the EFI applications the boot manager started (EV_EFI_BOOT_SERVICES_APPLICATION
    in PCR ``app_index`` after "Calling EFI Application from Boot Option"), up to the
    ExitBootServices invocation in PCR ``exit_index``.

    Returns None if the log records no ExitBootServices invocation (later software could
    then have logged anything). Raises :class:`VerificationError` (``eventlog.efi_apps``)
    for out-of-order, duplicated or relabelled marker events."""
    calling = hash_bank(bank, CALLING_EFI_APPLICATION)
    exiting = hash_bank(bank, EXIT_BOOT_SERVICES_INVOCATION)
    apps: list[bytes] = []
    seen_calling = seen_app_sep = seen_exit_sep = False

    def fail(msg: str, e: TcgEvent) -> VerificationError:
        return VerificationError(f"{msg} ({_where(e)})", code="eventlog.efi_apps")

    def marker(e: TcgEvent, want: bytes, what: str) -> bool:
        d = e.digest(bank)
        if d is None or not hmac.compare_digest(d, want):
            return False
        if e.event_type != EV_EFI_ACTION:
            raise fail(f"{what} digest on a non-EV_EFI_ACTION event", e)
        if not event_data_verified(e, bank):
            raise fail(f"{what} event data does not match its digest", e)
        return True

    for e in events:
        if e.index == app_index:
            if marker(e, calling, "CallingEFIApplication"):
                if seen_calling:
                    raise fail("second CallingEFIApplication event", e)
                if seen_app_sep:
                    raise fail("CallingEFIApplication after the separator", e)
                seen_calling = True
            if e.event_type == EV_EFI_BOOT_SERVICES_APPLICATION:
                if not seen_calling:
                    raise fail("EFI application before the CallingEFIApplication event", e)
                d = e.digest(bank)
                if d is None:
                    raise UnsupportedEvidenceError(
                        f"{_where(e)} has no {bank} digest", code="eventlog.bank"
                    )
                apps.append(d)
            if _is_separator(e, bank):
                if seen_app_sep:
                    raise fail("second separator", e)
                seen_app_sep = True
        if e.index == exit_index:
            if marker(e, exiting, "ExitBootServices"):
                return tuple(apps)
            if _is_separator(e, bank) and app_index != exit_index:
                if seen_exit_sep:
                    raise fail("second separator", e)
                seen_exit_sep = True
    return None

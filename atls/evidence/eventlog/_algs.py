"""TPM algorithm identifiers, digest sizes, hashing, and TCG event-type names.

Bank names are the lower-case hashlib names (``sha1``, ``sha256``, ``sha384``, ``sha512``,
``sm3_256``, ``sha3_256``...). Digest sizes come from the TCG algorithm registry; a log's
Spec ID event must agree with them for every algorithm it declares that atls knows.
"""

from __future__ import annotations

import hashlib

from atls.errors import UnsupportedEvidenceError

__all__ = [
    "ALG_IDS",
    "ALG_NAMES",
    "ALG_SIZES",
    "EV_ACTION",
    "EV_COMPACT_HASH",
    "EV_CPU_MICROCODE",
    "EV_EFI_ACTION",
    "EV_EFI_BOOT_SERVICES_APPLICATION",
    "EV_EFI_BOOT_SERVICES_DRIVER",
    "EV_EFI_GPT_EVENT",
    "EV_EFI_HANDOFF_TABLES",
    "EV_EFI_HANDOFF_TABLES2",
    "EV_EFI_HCRTM_EVENT",
    "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    "EV_EFI_RUNTIME_SERVICES_DRIVER",
    "EV_EFI_SPDM_FIRMWARE_BLOB",
    "EV_EFI_SPDM_FIRMWARE_CONFIG",
    "EV_EFI_VARIABLE_AUTHORITY",
    "EV_EFI_VARIABLE_BOOT",
    "EV_EFI_VARIABLE_BOOT2",
    "EV_EFI_VARIABLE_DRIVER_CONFIG",
    "EV_EVENT_TAG",
    "EV_IPL",
    "EV_IPL_PARTITION_DATA",
    "EV_NONHOST_CODE",
    "EV_NONHOST_CONFIG",
    "EV_NONHOST_INFO",
    "EV_NO_ACTION",
    "EV_OMIT_BOOT_DEVICE_EVENTS",
    "EV_PLATFORM_CONFIG_FLAGS",
    "EV_POST_CODE",
    "EV_PREBOOT_CERT",
    "EV_SEPARATOR",
    "EV_S_CRTM_CONTENTS",
    "EV_S_CRTM_VERSION",
    "EV_TABLE_OF_DEVICES",
    "EVENT_TYPE_NAMES",
    "EVENT_TYPES",
    "bank_size",
    "event_type_name",
    "hash_bank",
]

# TPM_ALG_ID -> (bank name, digest size). TCG Algorithm Registry.
_ALGS: dict[int, tuple[str, int]] = {
    0x0004: ("sha1", 20),
    0x000B: ("sha256", 32),
    0x000C: ("sha384", 48),
    0x000D: ("sha512", 64),
    0x0012: ("sm3_256", 32),
    0x0027: ("sha3_256", 32),
    0x0028: ("sha3_384", 48),
    0x0029: ("sha3_512", 64),
}
ALG_NAMES: dict[int, str] = {k: v[0] for k, v in _ALGS.items()}
ALG_IDS: dict[str, int] = {v[0]: k for k, v in _ALGS.items()}
ALG_SIZES: dict[int, int] = {k: v[1] for k, v in _ALGS.items()}

# hashlib names (sm3 is "sm3" in hashlib, "sm3_256" in the TCG registry).
_HASHLIB = {"sm3_256": "sm3"}


def bank_size(bank: str) -> int:
    """Digest size of a bank, or :class:`UnsupportedEvidenceError` for an unknown bank."""
    alg = ALG_IDS.get(bank)
    if alg is None:
        raise UnsupportedEvidenceError(
            f"unknown digest bank {bank!r}; known: {sorted(ALG_IDS)}", code="eventlog.bank"
        )
    return ALG_SIZES[alg]


def hash_bank(bank: str, data: bytes) -> bytes:
    """``H_bank(data)``. Unknown banks (or a hash this Python lacks) are unsupported."""
    bank_size(bank)
    try:
        return hashlib.new(_HASHLIB.get(bank, bank), data).digest()
    except ValueError as e:  # e.g. an OpenSSL build without SM3
        raise UnsupportedEvidenceError(
            f"hash {bank} is not available in this Python build", code="eventlog.bank"
        ) from e


# TCG PC Client Platform Firmware Profile, event types.
EV_PREBOOT_CERT = 0x0
EV_POST_CODE = 0x1
EV_NO_ACTION = 0x3
EV_SEPARATOR = 0x4
EV_ACTION = 0x5
EV_EVENT_TAG = 0x6
EV_S_CRTM_CONTENTS = 0x7
EV_S_CRTM_VERSION = 0x8
EV_CPU_MICROCODE = 0x9
EV_PLATFORM_CONFIG_FLAGS = 0xA
EV_TABLE_OF_DEVICES = 0xB
EV_COMPACT_HASH = 0xC
EV_IPL = 0xD
EV_IPL_PARTITION_DATA = 0xE
EV_NONHOST_CODE = 0xF
EV_NONHOST_CONFIG = 0x10
EV_NONHOST_INFO = 0x11
EV_OMIT_BOOT_DEVICE_EVENTS = 0x12
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_VARIABLE_BOOT = 0x80000002
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004
EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005
EV_EFI_GPT_EVENT = 0x80000006
EV_EFI_ACTION = 0x80000007
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
EV_EFI_HANDOFF_TABLES = 0x80000009
EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
EV_EFI_HANDOFF_TABLES2 = 0x8000000B
EV_EFI_VARIABLE_BOOT2 = 0x8000000C
EV_EFI_HCRTM_EVENT = 0x80000010
EV_EFI_VARIABLE_AUTHORITY = 0x800000E0
EV_EFI_SPDM_FIRMWARE_BLOB = 0x800000E1
EV_EFI_SPDM_FIRMWARE_CONFIG = 0x800000E2

EVENT_TYPE_NAMES: dict[int, str] = {
    EV_PREBOOT_CERT: "EV_PREBOOT_CERT",
    EV_POST_CODE: "EV_POST_CODE",
    EV_NO_ACTION: "EV_NO_ACTION",
    EV_SEPARATOR: "EV_SEPARATOR",
    EV_ACTION: "EV_ACTION",
    EV_EVENT_TAG: "EV_EVENT_TAG",
    EV_S_CRTM_CONTENTS: "EV_S_CRTM_CONTENTS",
    EV_S_CRTM_VERSION: "EV_S_CRTM_VERSION",
    EV_CPU_MICROCODE: "EV_CPU_MICROCODE",
    EV_PLATFORM_CONFIG_FLAGS: "EV_PLATFORM_CONFIG_FLAGS",
    EV_TABLE_OF_DEVICES: "EV_TABLE_OF_DEVICES",
    EV_COMPACT_HASH: "EV_COMPACT_HASH",
    EV_IPL: "EV_IPL",
    EV_IPL_PARTITION_DATA: "EV_IPL_PARTITION_DATA",
    EV_NONHOST_CODE: "EV_NONHOST_CODE",
    EV_NONHOST_CONFIG: "EV_NONHOST_CONFIG",
    EV_NONHOST_INFO: "EV_NONHOST_INFO",
    EV_OMIT_BOOT_DEVICE_EVENTS: "EV_OMIT_BOOT_DEVICE_EVENTS",
    EV_EFI_VARIABLE_DRIVER_CONFIG: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    EV_EFI_VARIABLE_BOOT: "EV_EFI_VARIABLE_BOOT",
    EV_EFI_BOOT_SERVICES_APPLICATION: "EV_EFI_BOOT_SERVICES_APPLICATION",
    EV_EFI_BOOT_SERVICES_DRIVER: "EV_EFI_BOOT_SERVICES_DRIVER",
    EV_EFI_RUNTIME_SERVICES_DRIVER: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    EV_EFI_GPT_EVENT: "EV_EFI_GPT_EVENT",
    EV_EFI_ACTION: "EV_EFI_ACTION",
    EV_EFI_PLATFORM_FIRMWARE_BLOB: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    EV_EFI_HANDOFF_TABLES: "EV_EFI_HANDOFF_TABLES",
    EV_EFI_PLATFORM_FIRMWARE_BLOB2: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    EV_EFI_HANDOFF_TABLES2: "EV_EFI_HANDOFF_TABLES2",
    EV_EFI_VARIABLE_BOOT2: "EV_EFI_VARIABLE_BOOT2",
    EV_EFI_HCRTM_EVENT: "EV_EFI_HCRTM_EVENT",
    EV_EFI_VARIABLE_AUTHORITY: "EV_EFI_VARIABLE_AUTHORITY",
    EV_EFI_SPDM_FIRMWARE_BLOB: "EV_EFI_SPDM_FIRMWARE_BLOB",
    EV_EFI_SPDM_FIRMWARE_CONFIG: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}
EVENT_TYPES: dict[str, int] = {v: k for k, v in EVENT_TYPE_NAMES.items()}


def event_type_name(event_type: int) -> str:
    """``EV_SEPARATOR`` etc.; unknown types as ``0x%08x``."""
    return EVENT_TYPE_NAMES.get(event_type, f"0x{event_type:08x}")

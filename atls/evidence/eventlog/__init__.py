"""Event logs and their replay: TCG PC Client logs (TPM ``binary_bios_measurements``, legacy
SHA-1 logs, TDX CCEL), dstack's JSON runtime log, and Linux IMA measurement lists.

Everything here is pure (bytes in, values out). A log is evidence only once it replays to a
signed register (a quoted PCR, an RTMR of a verified quote): parse, :func:`check_replay`
against the signed values, and only then read facts from the events
(:func:`secure_boot_state`, :func:`dstack_claims`, :func:`ima_claims`...).

Error codes: ``eventlog.parse`` (malformed input), ``eventlog.unsupported`` and
``eventlog.bank`` (unsupported version or digest bank), ``eventlog.replay_mismatch``,
``eventlog.locality``, ``eventlog.bad_index``, ``eventlog.event_data``,
``eventlog.secure_boot``, ``eventlog.efi_apps``, ``eventlog.dstack.*``,
``eventlog.ima.template_hash``, ``eventlog.expected`` (bad expected-value argument).
"""

from atls.evidence.eventlog._algs import (
    ALG_IDS,
    ALG_NAMES,
    EVENT_TYPE_NAMES,
    EVENT_TYPES,
    bank_size,
    event_type_name,
    hash_bank,
)
from atls.evidence.eventlog._attach import with_dstack_events, with_event_log
from atls.evidence.eventlog._ccel import (
    CC_TYPE_TDX,
    CcelTable,
    encode_ccel_table,
    parse_ccel,
    parse_ccel_table,
)
from atls.evidence.eventlog._dstack import (
    RUNTIME_EVENT_TYPE,
    DstackEvent,
    boot_rtmr3,
    dstack_claims,
    dstack_to_tcg,
    encode_dstack_event_log,
    parse_dstack_event_log,
    replay_dstack,
    runtime_event_digest,
    runtime_event_preimage,
    verify_dstack_events,
)
from atls.evidence.eventlog._ima import (
    IMA_PCR,
    ImaEntry,
    check_template_hashes,
    encode_ima_ascii,
    encode_ima_binary,
    ima_claims,
    ima_template_data,
    parse_ima,
    parse_ima_ascii,
    parse_ima_binary,
    replay_ima,
)
from atls.evidence.eventlog._replay import (
    check_registers,
    check_replay,
    replay,
    replay_rtmrs,
    rtmr_for_mr_index,
)
from atls.evidence.eventlog._tcg import (
    SpecIdEvent,
    TcgEvent,
    TcgLog,
    encode_tcg_log,
    parse_tcg_log,
)
from atls.evidence.eventlog._uefi import (
    PlatformState,
    SecureBootState,
    UefiVariable,
    check_event_data,
    efi_apps,
    event_data_verified,
    parse_uefi_variable,
    platform_state,
    secure_boot_state,
)

__all__ = [
    "ALG_IDS",
    "ALG_NAMES",
    "CC_TYPE_TDX",
    "EVENT_TYPES",
    "EVENT_TYPE_NAMES",
    "IMA_PCR",
    "RUNTIME_EVENT_TYPE",
    "CcelTable",
    "DstackEvent",
    "ImaEntry",
    "PlatformState",
    "SecureBootState",
    "SpecIdEvent",
    "TcgEvent",
    "TcgLog",
    "UefiVariable",
    "bank_size",
    "boot_rtmr3",
    "check_event_data",
    "check_registers",
    "check_replay",
    "check_template_hashes",
    "dstack_claims",
    "dstack_to_tcg",
    "efi_apps",
    "encode_ccel_table",
    "encode_dstack_event_log",
    "encode_ima_ascii",
    "encode_ima_binary",
    "encode_tcg_log",
    "event_data_verified",
    "event_type_name",
    "hash_bank",
    "ima_claims",
    "ima_template_data",
    "parse_ccel",
    "parse_ccel_table",
    "parse_dstack_event_log",
    "parse_ima",
    "parse_ima_ascii",
    "parse_ima_binary",
    "parse_tcg_log",
    "parse_uefi_variable",
    "platform_state",
    "replay",
    "replay_dstack",
    "replay_ima",
    "replay_rtmrs",
    "rtmr_for_mr_index",
    "runtime_event_digest",
    "runtime_event_preimage",
    "secure_boot_state",
    "verify_dstack_events",
    "with_dstack_events",
    "with_event_log",
]

"""Replay of TCG event logs into PCRs / RTMRs and comparison with signed register values.

Rules (TCG PC Client Platform Firmware Profile section 10.4; measurement-algorithms.md 10.2):

1. Registers start at zero, except that an EV_NO_ACTION event in PCR 0 whose data is
   ``"StartupLocality\\0" || u8 locality`` sets PCR 0's initial value to
   ``0^(n-1) || locality`` in every bank (it must come before any PCR 0 measurement).
2. EV_NO_ACTION events are never extended.
3. Every other event extends its index in the bank: ``R = H(R || digest)``.
4. The replayed values are compared with the signed ones (quoted PCRs, quote RTMRs).

In a CCEL (TDX) log the index is the CC-MR index: 1..4 are RTMR0..3 and 0 is MRTD, which a
log can never extend.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from atls.errors import ConfigurationError, UnsupportedEvidenceError, VerificationError
from atls.evidence.eventlog._algs import ALG_IDS, EV_NO_ACTION, bank_size, hash_bank
from atls.evidence.eventlog._tcg import TcgEvent

if TYPE_CHECKING:
    from atls.evidence.eventlog._dstack import DstackEvent

__all__ = [
    "CCEL_RTMR_COUNT",
    "STARTUP_LOCALITY",
    "check_registers",
    "check_replay",
    "replay",
    "replay_rtmrs",
    "rtmr_for_mr_index",
]

STARTUP_LOCALITY = b"StartupLocality\x00"
CCEL_RTMR_COUNT = 4
_BANK_BY_SIZE = {20: "sha1", 32: "sha256", 48: "sha384", 64: "sha512"}


def replay(events: Iterable[TcgEvent], *, bank: str) -> dict[int, bytes]:
    """Replay ``events`` into ``{index: value}`` for ``bank`` (``sha1``, ``sha256``...).

    Only indices that the log touches appear in the result. Raises
    :class:`UnsupportedEvidenceError` (``eventlog.bank``) if a measured event carries no
    digest for ``bank``, :class:`VerificationError` (``eventlog.locality``) for a misplaced
    or invalid StartupLocality event.
    """
    size = bank_size(bank)
    regs: dict[int, bytes] = {}
    pcr0_extended = False
    locality_seen = False
    for e in events:
        if e.event_type == EV_NO_ACTION:
            # 1. StartupLocality sets PCR 0's starting value; 2. nothing else is extended.
            if e.index == 0 and e.data[: len(STARTUP_LOCALITY)] == STARTUP_LOCALITY:
                where = f"StartupLocality event at offset {e.offset:#x}"
                if len(e.data) != len(STARTUP_LOCALITY) + 1:
                    raise VerificationError(f"{where} is not 17 bytes", code="eventlog.locality")
                if pcr0_extended or locality_seen:
                    raise VerificationError(
                        f"{where} comes after PCR 0 was set", code="eventlog.locality"
                    )
                locality = e.data[-1]
                if locality not in (0, 3, 4):
                    raise VerificationError(
                        f"{where} names locality {locality} (must be 0, 3 or 4)",
                        code="eventlog.locality",
                    )
                locality_seen = True
                regs[0] = bytes(size - 1) + bytes([locality])
            continue
        # 3. extend
        d = e.digest(bank)
        if d is None:
            raise UnsupportedEvidenceError(
                f"event {e.type_name} at offset {e.offset:#x} has no {bank} digest",
                code="eventlog.bank",
            )
        if len(d) != size:
            raise UnsupportedEvidenceError(
                f"event at offset {e.offset:#x}: {bank} digest of {len(d)} bytes",
                code="eventlog.bank",
            )
        if e.index == 0:
            pcr0_extended = True
        regs[e.index] = hash_bank(bank, regs.get(e.index, bytes(size)) + d)
    return regs


def rtmr_for_mr_index(index: int) -> int:
    """TDX CCEL mapping: CC-MR index 1..4 -> RTMR 0..3. Index 0 (MRTD) and others are
    rejected (:class:`VerificationError`, ``eventlog.bad_index``)."""
    if not 1 <= index <= CCEL_RTMR_COUNT:
        what = "MRTD, which no event can extend" if index == 0 else "not an RTMR"
        raise VerificationError(
            f"measured event for CC-MR index {index} ({what})", code="eventlog.bad_index"
        )
    return index - 1


def replay_rtmrs(events: Iterable[TcgEvent], *, bank: str = "sha384") -> dict[int, bytes]:
    """Replay a CCEL into ``{0: RTMR0, ..., 3: RTMR3}`` (all four present; TDX uses SHA-384)."""
    regs = replay(events, bank=bank)
    out = {i: bytes(bank_size(bank)) for i in range(CCEL_RTMR_COUNT)}
    for index, value in regs.items():
        out[rtmr_for_mr_index(index)] = value
    return out


def _parse_name(name: str) -> tuple[str, int]:
    for kind in ("pcr", "rtmr"):
        rest = name[len(kind) :]
        if name.startswith(kind) and rest.isdigit() and rest.isascii() and len(rest) <= 2:
            return kind, int(rest)
    raise ConfigurationError(
        f"register name {name!r}: expected pcrN or rtmrN", code="eventlog.expected"
    )


def _infer_bank(expected: Mapping[str, bytes], carried: Sequence[str]) -> str:
    sizes = {len(v) for v in expected.values()}
    if len(sizes) == 1:
        (size,) = sizes
        candidates = [b for b in carried if b in ALG_IDS and bank_size(b) == size]
        if len(candidates) == 1:
            return candidates[0]
        if size in _BANK_BY_SIZE and _BANK_BY_SIZE[size] in carried:
            return _BANK_BY_SIZE[size]
    raise ConfigurationError(
        "cannot tell the bank from the expected values; pass bank=", code="eventlog.expected"
    )


def check_registers(
    replayed: Mapping[str, bytes], expected: Mapping[str, bytes], *, label: str = ""
) -> None:
    """Compare named registers; a register absent from ``replayed`` is compared as zero.
    Raises :class:`VerificationError` (``eventlog.replay_mismatch``) naming every register
    that differs."""
    bad: list[str] = []
    for name, want in expected.items():
        have = replayed.get(name, bytes(len(want)))
        if len(have) != len(want) or not hmac.compare_digest(have, want):
            bad.append(f"{name}{label}: replayed {have.hex()}, expected {bytes(want).hex()}")
    if bad:
        raise VerificationError(
            "event log does not replay to the signed registers: " + "; ".join(bad),
            code="eventlog.replay_mismatch",
        )


def check_replay(
    events: Sequence[TcgEvent] | Sequence[DstackEvent],
    expected: Mapping[str, bytes],
    *,
    bank: str | None = None,
) -> None:
    """Check that ``events`` replay to ``expected`` (``{"pcr7": b"...", ...}`` for TPM logs,
    ``{"rtmr0": b"...", ...}`` for a CCEL or a dstack log).

    ``pcrN`` is the logged index N; ``rtmrN`` is CC-MR index N+1 in a CCEL and ``imr`` N in a
    dstack log. ``bank`` defaults to the one whose digest size fits the expected values.
    Registers the log never touches must equal their initial value (zero). Raises
    :class:`VerificationError` (``eventlog.replay_mismatch``) naming each differing register.
    """
    from atls.evidence.eventlog._dstack import DstackEvent, replay_dstack

    if not expected:
        raise ConfigurationError("no expected register values", code="eventlog.expected")
    kinds = {_parse_name(n)[0] for n in expected}
    if len(kinds) != 1:
        raise ConfigurationError("mix of pcrN and rtmrN names", code="eventlog.expected")
    (kind,) = kinds
    if events and all(isinstance(e, DstackEvent) for e in events):
        if kind != "rtmr" or bank not in (None, "sha384"):
            raise ConfigurationError(
                "a dstack log replays into rtmr0..3 (sha384)", code="eventlog.expected"
            )
        rtmrs = replay_dstack([e for e in events if isinstance(e, DstackEvent)])
        check_registers({f"rtmr{i}": v for i, v in rtmrs.items()}, expected)
        return
    tcg = [e for e in events if isinstance(e, TcgEvent)]
    if len(tcg) != len(events):
        raise ConfigurationError("events must all be TCG or all dstack", code="eventlog.expected")
    if kind == "rtmr":
        bank = bank or "sha384"
        named = {f"rtmr{i}": v for i, v in replay_rtmrs(tcg, bank=bank).items()}
    else:
        carried = list(dict.fromkeys(b for e in tcg for b in e.banks))
        bank = bank or _infer_bank(expected, carried)
        named = {f"pcr{i}": v for i, v in replay(tcg, bank=bank).items()}
    check_registers(named, expected, label=f" ({bank})")

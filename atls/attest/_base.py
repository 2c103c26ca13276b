"""The attester interface: who produces evidence on the server side."""

from __future__ import annotations

from typing import Protocol

from atls.collateral._bundle import Collateral

__all__ = ["Attester"]


class Attester(Protocol):
    """Produces evidence over 64 bytes of report data.

    ``format_name`` is the evidence format the certificate extension names;
    ``collateral()`` is what the server staples next to the evidence (VCEK/ASK for SNP,
    nothing for TDX since the PCK chain is inside the quote). ``attest`` may block
    (real hardware takes milliseconds to seconds); the TLS drivers run it off the event
    loop and bound how many run at once.
    """

    @property
    def format_name(self) -> str: ...

    def attest(self, report_data: bytes) -> bytes: ...

    def collateral(self) -> Collateral: ...

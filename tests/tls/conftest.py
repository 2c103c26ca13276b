"""A test-only evidence format (HMAC-signed) to exercise the TLS layer and the pipeline on
their own; the real platforms are exercised end to end in tests/test_e2e_*.py."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

import pytest

from atls.collateral import Collateral
from atls.errors import EvidenceParseError, VerificationError
from atls.evidence._verified import make_verified

KEY = b"test-only key"
MEASUREMENT = hashlib.sha384(b"test guest").digest()


class HmacFormat:
    name = "test-hmac"
    platform = "snp"

    def sniff(self, data: bytes) -> bool:
        return data.startswith(b"HMAC")

    def verify(self, evidence, *, trust, collateral, at):
        if len(evidence) != 4 + 64 + 48 + 32 or not evidence.startswith(b"HMAC"):
            raise EvidenceParseError("bad length", format="test-hmac")
        body, mac = evidence[:-32], evidence[-32:]
        if not hmac.compare_digest(mac, hmac.new(KEY, body, "sha256").digest()):
            raise VerificationError("bad mac", code="test.signature")
        rd, m = body[4:68], body[68:116]
        return make_verified(
            platform="snp",
            claims={"measurement": m.hex(), "report_data": rd.hex()},
            report_data=rd,
            trust_root="test-key",
            simulated=False,
            debug=False,
        )


@dataclass
class HmacAttester:
    format_name: str = "test-hmac"
    measurement: bytes = MEASUREMENT
    corrupt_mac: bool = False
    wrong_report_data: bool = False
    calls: list[bytes] = field(default_factory=list)

    def attest(self, report_data: bytes) -> bytes:
        self.calls.append(report_data)
        if self.wrong_report_data:
            report_data = bytes(64)
        body = b"HMAC" + report_data + self.measurement
        mac = hmac.new(KEY, body, "sha256").digest()
        if self.corrupt_mac:
            mac = bytes([mac[0] ^ 1]) + mac[1:]
        return body + mac

    def collateral(self) -> Collateral:
        return Collateral()


@pytest.fixture
def hmac_format() -> HmacFormat:
    return HmacFormat()

"""Property tests: SecretVM's response and registry parsers raise only typed errors."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from atls.errors import ConfigurationError, EvidenceParseError
from atls.interop.secretvm import extract_cpu_evidence, load_registry


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_cpu_page_random_bytes(body: bytes) -> None:
    try:
        out = extract_cpu_evidence(body)
    except EvidenceParseError as e:
        assert e.code == "secretvm.parse"
    else:
        assert isinstance(out, bytes) and out


@given(st.binary(min_size=1184, max_size=2000), st.sampled_from(["tdx", "snp"]))
def test_cpu_page_round_trip(tail: bytes, platform: str) -> None:
    # a TDX quote (header v4, TEE type 0x81) served as hex, an SNP report (v3) as base64
    if platform == "tdx":
        quote = (4).to_bytes(2, "little") + bytes(2) + (0x81).to_bytes(4, "little") + tail
        text = quote.hex().encode()
    else:
        quote = (3).to_bytes(4, "little") + tail
        text = base64.b64encode(quote)
    page = b"<html><body><pre>\n" + text + b"\n</pre></body></html>"
    assert extract_cpu_evidence(page) == quote


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_registry_random_text(text: str) -> None:
    try:
        rows = load_registry(text)
    except ConfigurationError as e:
        assert e.code == "secretvm.registry"
    else:
        assert rows and all(len(r.mr_td) == 96 for r in rows)

import pytest

from atls.binding import (
    ATLS_V1_VECTOR,
    atls_v1_report_data,
    check_atls_v1,
    tpm_qualifying_data,
)
from atls.errors import VerificationError


def test_published_vectors_reproduce():
    # the literal hex in binding.py's docstring, not values computed by the code under test
    static = bytes.fromhex(
        "37722618345595f373bd33807bd9a291c0ddd3b4fe7465f8798fed88d4f997e7"
        "ebe365e2082f88514c387e3b01f4ca2db92723cbebc2bfd2d2a67ec1c3aa7a46"
    )
    assert atls_v1_report_data(bytes(range(91))) == static
    for spki, nonce, expected in ATLS_V1_VECTOR:
        assert atls_v1_report_data(spki, nonce) == expected
        check_atls_v1(expected, spki, nonce)


def test_binding_is_injective_over_the_split():
    # moving a byte from the key to the nonce must change the result (length prefixes)
    a = atls_v1_report_data(b"k" * 10, b"")
    b = atls_v1_report_data(b"k" * 9, b"")
    assert a != b
    assert len(a) == 64


def test_wrong_key_and_wrong_nonce_have_distinct_codes():
    rd = atls_v1_report_data(b"spki", b"\x01" * 32)
    with pytest.raises(VerificationError) as e:
        check_atls_v1(rd, b"other", b"\x01" * 32)
    assert e.value.code == "binding.nonce_mismatch"
    with pytest.raises(VerificationError) as e:
        check_atls_v1(atls_v1_report_data(b"spki"), b"other")
    assert e.value.code == "binding.key_mismatch"
    with pytest.raises(VerificationError) as e:
        check_atls_v1(b"short", b"spki")
    assert e.value.code == "binding.length"


def test_nonce_must_be_32_bytes():
    with pytest.raises(ValueError):
        atls_v1_report_data(b"spki", b"\x01" * 31)


def test_tpm_reduction_is_a_prefix_checked_by_the_same_function():
    rd = atls_v1_report_data(b"spki", b"\x02" * 32)
    q = tpm_qualifying_data(rd, 32)
    assert q == rd[:32]
    check_atls_v1(q, b"spki", b"\x02" * 32)
    with pytest.raises(VerificationError):
        check_atls_v1(q, b"spki", b"\x03" * 32)
    with pytest.raises(ValueError):
        tpm_qualifying_data(rd, 8)

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atls.tls import decode_nonce_sni, encode_nonce_sni


@given(st.binary(min_size=32, max_size=32))
def test_round_trip_and_label_limit(nonce):
    name = encode_nonce_sni(nonce)
    assert all(len(label) <= 63 for label in name.split("."))
    assert decode_nonce_sni(name) == nonce
    assert decode_nonce_sni(name.upper().encode()) == nonce


@pytest.mark.parametrize(
    "name",
    [
        None,
        "",
        "example.com",
        "ab.cd.nonce.atls",
        "0" * 64 + ".nonce.atls",
        "g" * 32 + "." + "0" * 32 + ".nonce.atls",
    ],
)
def test_non_nonce_names(name):
    assert decode_nonce_sni(name) is None


def test_wrong_size():
    with pytest.raises(ValueError):
        encode_nonce_sni(b"x" * 31)

"""GyroidOS rattestation.conf (protobuf text format) -> expected PCR values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atls.errors import ConfigurationError
from atls.evidence.tpm import RattestationConfig, parse_rattestation_conf

ZERO = "0X" + "00" * 32


def _basic(values: dict[int, str] | None = None, head: str = "") -> str:
    vals = values if values is not None else {i: ZERO for i in range(12)}
    blocks = "".join(
        f'pcr_values {{\n    number: {n}\n    value: "{v}"\n}}\n' for n, v in vals.items()
    )
    return f'name: "rattestation"\nkmod_sign_cert: "yocto.pem"\n{head}\natype: BASIC\n\n{blocks}'


def test_shipped_layout_basic_sha256() -> None:
    cfg = parse_rattestation_conf(_basic())
    assert cfg.name == "rattestation" and cfg.kmod_sign_cert == "yocto.pem"
    assert cfg.atype == "BASIC" and cfg.halg == 32 and cfg.bank == "sha256"
    assert cfg.selected_pcrs() == tuple(range(12))
    assert cfg.expected_pcrs() == {"sha256": {i: bytes(32) for i in range(12)}}
    # config.proto defaults
    assert (cfg.verify_ima, cfg.ima_pcr, cfg.verify_containers, cfg.container_pcr) == (
        True,
        10,
        True,
        11,
    )
    assert cfg.tpm_cert is None


def test_all_fields_advanced_sha1_and_syntax_variants() -> None:
    text = """
        # comment
        name: 'gyroid' ; kmod_sign_cert: "certs/" "kmod.pem"
        atype: ADVANCED  pcrs: 0x000403
        halg: SHA1
        tpm_cert: "ak.pem"
        verify_ima: false  ima_pcr: 10
        verify_containers: 0, container_pcr: 11
        pcr_values < number: 0 value: "0xAABBCCDDEEFF00112233445566778899aabbccdd" >
        pcr_values { number: 10, value: "0000000000000000000000000000000000000000" }
        pcr_values: [{ number: 1 value: "0X0101010101010101010101010101010101010101" }]
    """
    cfg = parse_rattestation_conf(text.encode())
    assert cfg.kmod_sign_cert == "certs/kmod.pem" and cfg.tpm_cert == "ak.pem"
    assert cfg.atype == "ADVANCED" and cfg.pcrs == 0x403 and cfg.selected_pcrs() == (0, 1, 10)
    assert cfg.bank == "sha1" and not cfg.verify_ima and not cfg.verify_containers
    exp = cfg.expected_pcrs()["sha1"]
    assert exp[0] == bytes.fromhex("aabbccddeeff00112233445566778899aabbccdd")
    assert exp[1] == b"\x01" * 20 and exp[10] == bytes(20)
    assert cfg.expected_pcrs_hex()["sha1"]["0"] == exp[0].hex()


def test_all_atype_and_numeric_enums() -> None:
    cfg = parse_rattestation_conf(
        'name: "x" kmod_sign_cert: "k" atype: 1 halg: 48 pcr_values { number: 23 value: "'
        + "ab" * 48
        + '" }'
    )
    assert cfg.atype == "ALL" and cfg.selected_pcrs() == tuple(range(24))
    assert cfg.expected_pcrs() == {"sha384": {23: b"\xab" * 48}}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('kmod_sign_cert: "k"', "required field 'name'"),
        ('name: "x"', "required field 'kmod_sign_cert'"),
        ('name: "x" name: "y" kmod_sign_cert: "k"', "given twice"),
        ('name: "x" kmod_sign_cert: "k" colour: "blue"', "unknown field"),
        ('name: "x" kmod_sign_cert: "k" atype: ADVANCED', "needs the pcrs bitmask"),
        ('name: "x" kmod_sign_cert: "k" halg: MD5', "halg must be one of"),
        ('name: "x" kmod_sign_cert: "k" verify_ima: maybe', "true or false"),
        ('name: "x" kmod_sign_cert: "k" ima_pcr: 24', "not a PCR index"),
        ('name: "x" kmod_sign_cert: "k" pcr_values { number: 0 }', "needs number and value"),
        ('name: "x" kmod_sign_cert: "k" pcr_values { number: 0 value: "00" }', "halg needs 32"),
        ('name: "x" kmod_sign_cert: "k" pcr_values { number: 0 value: "zz" }', "not hex"),
        (
            'name: "x" kmod_sign_cert: "k" pcr_values { number: 12 value: "' + "00" * 32 + '" }',
            "does not request",
        ),
        (
            'name: "x" kmod_sign_cert: "k" pcr_values { number: 24 value: "' + "00" * 32 + '" }',
            "outside 0..23",
        ),
        ('name: "x" kmod_sign_cert: "k" pcr_values { colour: 1 }', "unknown field"),
        ('name: "x" kmod_sign_cert: "k" pcr_values {', "missing '}'"),
        ('name: "x" kmod_sign_cert: "k" name2 $', "unexpected character"),
        ('name: "x\\q" kmod_sign_cert: "k"', "unknown escape"),
    ],
)
def test_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as ei:
        parse_rattestation_conf(text)
    assert ei.value.code == "tpm.rattestation"


def test_duplicate_pcr_numbers_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="PCR 3 given twice"):
        parse_rattestation_conf(
            _basic({3: ZERO, 4: ZERO}) + f'pcr_values {{ number: 3 value: "{ZERO}" }}'
        )


def test_line_numbers_in_errors() -> None:
    with pytest.raises(ConfigurationError, match="line 3"):
        parse_rattestation_conf('name: "x"\nkmod_sign_cert: "k"\nbogus: 1\n')


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_raises_only_configuration_errors(text: str) -> None:
    try:
        cfg = parse_rattestation_conf(text)
    except ConfigurationError:
        return
    assert isinstance(cfg, RattestationConfig)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.integers(0, 11), st.binary(min_size=32, max_size=32), max_size=12))
def test_values_round_trip(values: dict[int, bytes]) -> None:
    cfg = parse_rattestation_conf(_basic({n: "0X" + v.hex().upper() for n, v in values.items()}))
    assert cfg.expected_pcrs() == {"sha256": values}

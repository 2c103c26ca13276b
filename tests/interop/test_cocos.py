"""Cocos: importing its SEV-SNP attestation policy JSON, and the era-B TDX profile over TLS
in both directions (atls server in Cocos mode, Cocos-profile client)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from atls.attest import SimulatedAttester
from atls.errors import ConfigurationError, PolicyError, VerificationError
from atls.interop.cocos import (
    CocosIssuance,
    CocosVerifier,
    cocos_binding,
    cocos_policy_from_json,
    decode_cocos_sni,
    encode_cocos_sni,
)
from atls.policy import parse_policy
from atls.testing.snp import FakeAmd
from atls.tls import AttestedCredentials
from atls.tls.trio import AttestedStream, open_attested_stream, serve_attested

MEASUREMENT = hashlib.sha384(b"cocos agent igvm").digest()
HOST_DATA = hashlib.sha256(b"cocos computation manifest").digest()
MILAN_TCB = 15352208179752599555  # bl 3, tee 0, snp 14, ucode 213 in the Milan layout


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def cocos_doc(**policy_overrides) -> dict:
    """A policy shaped like the ones Cocos writes (every field go-sev-guest knows)."""
    policy = {
        "chip_id": b64(b"\x5a" * 64),
        "family_id": b64(bytes(16)),
        "host_data": b64(HOST_DATA),
        "image_id": b64(bytes(16)),
        "measurement": b64(MEASUREMENT),
        "minimum_build": 8,
        "minimum_launch_tcb": MILAN_TCB,
        "minimum_tcb": MILAN_TCB,
        "minimum_version": "1.55",
        "permit_provisional_firmware": True,
        "policy": 196608,
        "product": {"name": 1},
        "report_id_ma": b64(b"\xff" * 32),
        "require_author_key": False,
        "require_id_block": False,
        "vmpl": 2,
    }
    policy.update(policy_overrides)
    return {
        "pcr_values": {"sha256": {"0": "00" * 32}},
        "policy": policy,
        "root_of_trust": {
            "check_crl": True,
            "disallow_network": False,
            "product": "Milan",
            "product_line": "Milan",
        },
    }


UNEXPRESSIBLE = [
    "pcr_values",
    "policy.minimum_build",
    "policy.minimum_launch_tcb",
    "policy.minimum_version",
    "policy.report_id_ma",
    "root_of_trust.check_crl",
]


@pytest.mark.parametrize("field", UNEXPRESSIBLE)
def test_each_unexpressible_field_is_named(field):
    others = [f for f in UNEXPRESSIBLE if f != field]
    with pytest.raises(ConfigurationError) as e:
        cocos_policy_from_json(json.dumps(cocos_doc()), ignore=others)
    assert e.value.code == "cocos.policy"
    assert repr(field) in str(e.value)


def test_expressible_fields_are_carried_over():
    out = cocos_policy_from_json(json.dumps(cocos_doc()), name="agent", ignore=UNEXPRESSIBLE)
    snp = out["snp"]
    assert snp["measurement"] == MEASUREMENT.hex()
    assert snp["host_data"] == HOST_DATA.hex()
    assert snp["chip_id"] == "5a" * 64
    assert snp["family_id"] == snp["image_id"] == "00" * 16
    assert snp["vmpl"] == 2
    assert snp["minimum_tcb"] == {"bootloader": 3, "tee": 0, "snp": 14, "microcode": 213}
    assert snp["products"] == ["Milan"]
    assert (snp["allow_smt"], snp["allow_migration_agent"], snp["allow_debug"]) == (
        True,
        False,
        False,
    )
    pol = parse_policy(out)  # the dict is a valid atls policy
    rules = pol.platforms["snp"]
    assert rules.ints["vmpl"] == frozenset({2})
    assert rules.minimum_tcb == {"bootloader": 3, "tee": 0, "snp": 14, "microcode": 213}


def test_protojson_camel_case_and_string_integers():
    doc = {
        "policy": {
            "measurement": b64(MEASUREMENT),
            "minimumTcb": str(MILAN_TCB),
            "policy": "458752",  # 0x70000: SMT + MIGRATE_MA
            "minimumGuestSvn": 3,
            "trustedIdKeyHashes": [b64(b"\x01" * 48)],
            "requireIdBlock": True,
        },
        "rootOfTrust": {"productLine": "Genoa", "disallowNetwork": True},
    }
    snp = cocos_policy_from_json(json.dumps(doc))["snp"]
    assert snp["minimum_tcb"]["microcode"] == 213
    assert snp["allow_migration_agent"] is True
    assert snp["minimum_guest_svn"] == 3
    assert snp["id_key_digest"] == ["01" * 48]
    assert snp["products"] == ["Genoa"]


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"policy": 0x30000 | 1 << 20}, "policy.policy"),  # SINGLE_SOCKET required
        ({"policy": 0x30000 | 1 << 22}, "policy.policy"),  # AES-256-XTS required
        ({"policy": 0x30102}, "policy.policy"),  # ABI 1.2 minimum
        ({"policy": 0x10000}, "policy.policy"),  # reserved bit 17 clear
        ({"require_id_block": True}, "policy.require_id_block"),
        ({"trusted_author_keys": [b64(b"k" * 96)]}, "policy.trusted_author_keys"),
        ({"measurement": b64(b"short")}, "policy.measurement"),
        ({"product": {"name": 2}}, "policy.product"),  # Genoa vs root_of_trust's Milan
        ({"minimum_tcb_turin": 5}, "policy.minimum_tcb_turin"),
        ({"no_such_field": 1}, "policy.no_such_field"),
        ({"product": {"name": 1, "machine_stepping": 1}}, "policy.product.machine_stepping"),
    ],
)
def test_refusals_name_the_field(overrides, field):
    with pytest.raises(ConfigurationError) as e:
        cocos_policy_from_json(json.dumps(cocos_doc(**overrides)), ignore=UNEXPRESSIBLE)
    assert repr(field) in str(e.value)


def test_ignore_must_name_present_fields_and_bad_json():
    with pytest.raises(ConfigurationError, match="does not have"):
        cocos_policy_from_json(json.dumps({"policy": {}}), ignore=["pcr_values"])
    with pytest.raises(ConfigurationError):
        cocos_policy_from_json("{not json")
    with pytest.raises(ConfigurationError):
        cocos_policy_from_json("[]")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_fields = st.sampled_from(
    [
        "measurement",
        "host_data",
        "policy",
        "vmpl",
        "minimum_tcb",
        "product",
        "chip_id",
        "require_id_block",
        "minimum_guest_svn",
        "trusted_id_key_hashes",
        "report_id",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(_fields, _json | st.binary(max_size=70).map(b64), max_size=6),
    st.dictionaries(st.sampled_from(["product_line", "check_crl", "x"]), _json, max_size=2),
)
def test_any_document_is_imported_or_refused_with_a_configuration_error(policy, rot):
    text = json.dumps({"policy": policy, "root_of_trust": rot})
    try:
        out = cocos_policy_from_json(text)
    except ConfigurationError:
        return
    parse_policy(out)  # whatever is carried over is a valid atls policy


def test_imported_policy_judges_snp_evidence():
    from atls.pipeline import judge
    from atls.testing.snp import DEFAULT_AT

    amd = FakeAmd()  # Milan
    doc = cocos_doc()
    del doc["policy"]["chip_id"]  # the fake chip's id is its own
    pol = parse_policy(cocos_policy_from_json(json.dumps(doc), ignore=UNEXPRESSIBLE))
    tcb = {"bootloader": 3, "tee": 0, "snp": 14, "microcode": 213}
    base = dict(measurement=MEASUREMENT, host_data=HOST_DATA, vmpl=2, reported_tcb=tcb)
    cases = {
        "good": ({}, set()),
        "measurement": ({"measurement": b"\x66" * 48}, {"measurement"}),
        "debug": ({"debug": True}, {"allow_debug"}),
        "vmpl": ({"vmpl": 0}, {"vmpl"}),
        "tcb": ({"reported_tcb": {**tcb, "snp": 13}}, {"minimum_tcb.snp"}),
    }
    for name, (knobs, expected) in cases.items():
        kw = {**base, **knobs}
        report = amd.report(bytes(64), **kw)
        verdict = judge(
            report,
            trust=amd.trust_store(),
            collateral=amd.collateral(vcek_tcb=kw["reported_tcb"]),
            at=DEFAULT_AT,
            policy=pol,
            allow_simulated=True,
        )
        rules = {v.rule for e in verdict.errors if isinstance(e, PolicyError) for v in e.violations}
        assert verdict.authentic, (name, verdict.errors)
        assert rules == expected, name
        assert (verdict.accepted is not None) == (not expected)


# --- era-B TDX over TLS -------------------------------------------------------------------


def test_sni_round_trip_and_binding_vector():
    nonce = bytes(range(64))
    sni = encode_cocos_sni(nonce)
    assert len(sni) == 128 + len(".nonce")
    assert decode_cocos_sni(sni) == nonce
    assert decode_cocos_sni("atls.example") is None
    assert cocos_binding(b"spki", nonce) == hashlib.sha3_512(b"spki" + nonce).digest()
    assert cocos_binding(b"spki", nonce) != hashlib.sha512(b"spki" + nonce).digest()


class Recorder:
    def __init__(self):
        self.received = b""
        self.handled = 0

    async def __call__(self, stream: AttestedStream) -> None:
        self.handled += 1
        while data := await stream.receive_some():
            self.received += data
            await stream.send_all(data)


class StaleNonce(CocosIssuance):
    def report_data(self, spki_der: bytes, nonce: bytes) -> bytes:
        return cocos_binding(spki_der, bytes(64))  # ignores the client's nonce


async def _run(profile, policy, rec, **knobs):
    from atls.testing.tdx import FakeIntel

    intel = FakeIntel()
    att = SimulatedAttester("tdx", hierarchy=intel, **knobs)
    creds = AttestedCredentials(att, mode="fresh", profile=profile)
    v = CocosVerifier(
        policy=policy,
        trust=intel.trust_store(),
        collateral=intel.collateral(),
        allow_simulated=True,
    )
    async with trio.open_nursery() as n:
        listeners = await n.start(
            lambda task_status: serve_attested(
                rec, 0, credentials=creds, host="127.0.0.1", task_status=task_status
            )
        )
        port = listeners[0].socket.getsockname()[1]
        result: object
        try:
            s = await open_attested_stream("127.0.0.1", port, verifier=v)
        except (VerificationError, PolicyError) as e:
            result = e
        else:
            async with s:
                await s.send_all(b"algorithm.py")
                assert await s.receive_some() == b"algorithm.py"
                result = s.attestation
        await trio.sleep(0.05)
        n.cancel_scope.cancel()
    return result


TDX_POLICY = parse_policy({"version": 1, "tdx": {"mr_td": "11" * 48}})


async def test_cocos_tdx_both_directions():
    rec = Recorder()
    acc = await _run(CocosIssuance(), TDX_POLICY, rec)
    assert acc.binding == "cocos"
    assert acc.claims["mr_td"] == "11" * 48
    assert rec.received == b"algorithm.py"


@pytest.mark.parametrize(
    "profile,knobs,policy,code",
    [
        (StaleNonce(), {}, TDX_POLICY, "cocos.binding"),
        (CocosIssuance(), {"mr_td": b"\x12" * 48}, TDX_POLICY, "policy"),
    ],
    ids=["binding ignores the nonce", "wrong MRTD"],
)
async def test_cocos_rejections_send_nothing(profile, knobs, policy, code):
    rec = Recorder()
    err = await _run(profile, policy, rec, **knobs)
    assert isinstance(err, (VerificationError, PolicyError))
    assert err.code == code
    assert rec.handled == 0 and rec.received == b""

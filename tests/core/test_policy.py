import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atls.errors import ConfigurationError, PolicyError
from atls.evidence._verified import make_verified
from atls.policy import Policy, dump_policy, load_policy, parse_policy, pin_claims

M = "ab" * 48


def snp(**claims):
    base = {
        "measurement": M,
        "host_data": "00" * 32,
        "product": "Milan",
        "vmpl": 0,
        "reported_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115},
        "policy_migrate_ma": False,
        "policy_smt": True,
    }
    base.update(claims)
    return make_verified(
        platform="snp",
        claims=base,
        report_data=b"\0" * 64,
        trust_root="amd-ark-milan",
        simulated=False,
        debug=bool(claims.get("policy_debug")),
    )


def tdx(status="UpToDate", advisories=(), debug=False, **claims):
    return make_verified(
        platform="tdx",
        claims={"mr_td": M, **claims},
        report_data=b"",
        trust_root="intel-sgx-root",
        simulated=False,
        debug=debug,
        tcb_status=status,
        advisory_ids=tuple(advisories),
    )


def test_verified_cannot_be_built_outside_verifiers():
    from atls.evidence import Verified

    with pytest.raises(TypeError):
        Verified(
            platform="snp", claims={}, report_data=b"", trust_root="x", simulated=False, debug=False
        )


def test_default_policy_accepts_authentic_and_reports_unchecked_measurements():
    acc = Policy.default().evaluate(snp())
    assert any("measurements" in u for u in acc.unchecked)


def test_default_policy_rejects_debug():
    with pytest.raises(PolicyError) as e:
        Policy.default().evaluate(snp(policy_debug=True))
    assert [v.rule for v in e.value.violations] == ["allow_debug"]


def test_default_policy_tdx_statuses():
    Policy.default().evaluate(tdx("SWHardeningNeeded"))
    with pytest.raises(PolicyError):
        Policy.default().evaluate(tdx("OutOfDate"))


def test_every_violation_is_reported():
    p = parse_policy(
        {
            "version": 1,
            "snp": {
                "measurement": "cd" * 48,
                "products": ["Genoa"],
                "vmpl": [1],
                "minimum_tcb": {"snp": 9, "microcode": 200},
            },
        }
    )
    with pytest.raises(PolicyError) as e:
        p.evaluate(snp())
    rules = sorted(v.rule for v in e.value.violations)
    assert rules == ["measurement", "minimum_tcb.microcode", "minimum_tcb.snp", "products", "vmpl"]


def test_matching_policy_accepts_without_unchecked_note():
    p = parse_policy({"version": 1, "name": "svc", "snp": {"measurement": [M, "cd" * 48]}})
    acc = p.evaluate(snp())
    assert acc.policy == "svc"
    assert not any("measurements" in u for u in acc.unchecked)


def test_policy_without_the_platform_section_rejects():
    p = parse_policy({"version": 1, "tdx": {"mr_td": M}})
    with pytest.raises(PolicyError) as e:
        p.evaluate(snp())
    assert e.value.code == "policy.platform"


def test_tdx_advisories_and_status():
    p = parse_policy(
        {
            "version": 1,
            "tdx": {
                "mr_td": M,
                "allowed_tcb_status": ["UpToDate", "OutOfDate"],
                "denied_advisories": ["INTEL-SA-00960"],
            },
        }
    )
    p.evaluate(tdx("OutOfDate", ["INTEL-SA-00982"]))
    with pytest.raises(PolicyError):
        p.evaluate(tdx("OutOfDate", ["INTEL-SA-00960"]))
    with pytest.raises(PolicyError):
        p.evaluate(tdx("Revoked"))


@pytest.mark.parametrize(
    "doc,needle",
    [
        ({"version": 1}, "empty policy"),
        ({"snp": {"measurement": M}}, "version = 1"),
        ({"version": 1, "snp": {"measurment": M}}, "unknown key"),
        ({"version": 1, "snp": {"measurement": "zz"}}, "not hex"),
        ({"version": 1, "snp": {"measurement": "ab" * 47}}, "expected 48"),
        ({"version": 1, "snp": {"measurement": []}}, "allows nothing"),
        ({"version": 1, "snp": {"products": ["Rome"]}}, "unknown values"),
        ({"version": 1, "snp": {"minimum_tcb": {"cpu": 1}}}, "keys from"),
        ({"version": 1, "snp": {"allow_debug": "yes"}}, "true or false"),
        ({"version": 1, "tdx": {"allowed_tcb_status": ["Fine"]}}, "unknown values"),
        ({"version": 1, "tpm": {"pcrs": {"sha256": {"24": "00" * 32}}}}, "0..23"),
        ({"version": 1, "tpm": {"pcrs": {"md5": {"0": "00" * 16}}}}, "bank"),
        ({"version": 1, "nitro": {}}, "unknown section"),
    ],
)
def test_fail_closed_loading(doc, needle):
    with pytest.raises(ConfigurationError, match=needle):
        parse_policy(doc)


def test_load_from_file_and_bad_toml(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(f'version = 1\nname = "x"\n[snp]\nmeasurement = "{M}"\n')
    assert load_policy(f).name == "x"
    f.write_text("version = = 1")
    with pytest.raises(ConfigurationError):
        load_policy(f)
    with pytest.raises(ConfigurationError):
        load_policy(tmp_path / "missing.toml")


def test_pin_claims_round_trips_through_toml():
    import tomllib

    text = dump_policy("pinned", pin_claims(snp()))
    p = parse_policy(tomllib.loads(text))
    p.evaluate(snp())
    with pytest.raises(PolicyError):
        p.evaluate(snp(measurement="cd" * 48))


def test_tpm_pcrs_and_ima():
    v = make_verified(
        platform="tpm",
        claims={
            "pcrs": {"sha256": {"0": "11" * 32, "7": "22" * 32}},
            "ima": [{"path": "/bin/sh", "hash": "aa" * 32}],
        },
        report_data=b"",
        trust_root="pinned",
        simulated=False,
        debug=False,
    )
    ok = parse_policy(
        {"version": 1, "tpm": {"pcrs": {"sha256": {"0": "11" * 32}}, "ima_denied": ["bb" * 32]}}
    )
    ok.evaluate(v)
    bad = parse_policy(
        {
            "version": 1,
            "tpm": {
                "pcrs": {"sha256": {"7": "33" * 32, "9": "00" * 32}},
                "ima_allowed": ["cc" * 32],
            },
        }
    )
    with pytest.raises(PolicyError) as e:
        bad.evaluate(v)
    assert sorted(x.rule for x in e.value.violations) == [
        "ima_allowed",
        "pcrs.sha256.7",
        "pcrs.sha256.9",
    ]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.sampled_from(["ab" * 48, "00" * 32, "UpToDate", "snp", "tdx", "tpm", "sha256"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["version", "name", "snp", "tdx", "sgx", "tpm", "measurement", "mr_td",
                         "pcrs", "sha256", "allow_debug", "minimum_tcb", "events", "vmpl",
                         "allowed_tcb_status", "ak_name", "x"]),
        inner,
        max_size=5,
    ),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_json)
def test_random_policy_documents_raise_only_configuration_errors(doc) -> None:
    try:
        policy = parse_policy(doc)
    except ConfigurationError as e:
        assert e.code.startswith("policy")
    else:
        assert isinstance(policy, Policy)

"""The public API is curated: every exported name exists, is documented, and nothing private
leaks (in the spirit of trio's export tests)."""

import importlib

import pytest

import atls

PUBLIC_MODULES = [
    "atls",
    "atls.errors",
    "atls.policy",
    "atls.trust",
    "atls.collateral",
    "atls.tls",
    "atls.tls.trio",
    "atls.tls.sync",
    "atls.tls.engine",
    "atls.binding",
    "atls.x509ext",
    "atls.pipeline",
    "atls.attest",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_exact_and_documented(name):
    mod = importlib.import_module(name)
    assert mod.__doc__, f"{name} has no docstring"
    exported = mod.__all__
    assert len(exported) == len(set(exported))
    for n in exported:
        assert not n.startswith("_"), f"{name} exports private {n}"
        obj = getattr(mod, n)
        if callable(obj) and not isinstance(obj, type(pytest)):
            assert getattr(obj, "__doc__", None) or isinstance(obj, str), f"{name}.{n} undocumented"


def test_top_level_names():
    assert {
        "AttestationVerifier",
        "Policy",
        "TrustStore",
        "AttestedCredentials",
        "AttestationError",
        "judge",
    } <= set(atls.__all__)
    assert not [
        n
        for n in dir(atls)
        if not n.startswith("_")
        and n not in atls.__all__
        and not isinstance(getattr(atls, n), type(atls))
    ]

"""Policies: reference values and rules, loaded from TOML, evaluated over verified claims."""

from atls.policy._model import Accepted, PlatformRules, Policy
from atls.policy._pin import pin_claims
from atls.policy._toml import dump_policy, load_policy, parse_policy

__all__ = [
    "Accepted",
    "PlatformRules",
    "Policy",
    "dump_policy",
    "load_policy",
    "parse_policy",
    "pin_claims",
]

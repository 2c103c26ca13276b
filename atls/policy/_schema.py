"""Which keys each platform section of a policy accepts, and how each is checked.

* ``VALUE_KEYS``: claim name -> byte length. The policy lists allowed values (any of);
  a value given as one string means a list of one.
* ``INT_KEYS``: claims compared as allowed integers.
* ``MIN_KEYS``: ``minimum_<claim>`` keys: the claim must be >= the value.
* Rule keys (``allow_debug``, ``minimum_tcb``, ``products``, ``allowed_tcb_status`` ...) are
  documented in docs/policy.md and checked in ``_model``.
"""

from __future__ import annotations

__all__ = ["DEFAULT_TCB_STATUS", "PLATFORMS", "PlatformSchema", "TCB_STATUSES"]

from dataclasses import dataclass, field

TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
    }
)
#: Statuses accepted when a policy does not say (Intel's "acceptable with care" set).
DEFAULT_TCB_STATUS = frozenset(
    {"UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"}
)


@dataclass(frozen=True)
class PlatformSchema:
    value_keys: dict[str, int]
    int_keys: frozenset[str] = frozenset()
    min_keys: frozenset[str] = frozenset()
    rules: frozenset[str] = field(default_factory=frozenset)
    has_tcb_status: bool = False
    measurement_keys: frozenset[str] = frozenset()


_COMMON_RULES = frozenset({"allow_debug"})

PLATFORMS: dict[str, PlatformSchema] = {
    "snp": PlatformSchema(
        value_keys={
            "measurement": 48,
            "host_data": 32,
            "id_key_digest": 48,
            "author_key_digest": 48,
            "report_data": 64,
            "family_id": 16,
            "image_id": 16,
            "chip_id": 64,
        },
        int_keys=frozenset({"vmpl", "guest_svn"}),
        min_keys=frozenset({"guest_svn"}),
        rules=_COMMON_RULES
        | {"minimum_tcb", "products", "allow_migration_agent", "allow_smt", "signing_keys"},
        measurement_keys=frozenset({"measurement", "host_data", "id_key_digest"}),
    ),
    "tdx": PlatformSchema(
        value_keys={
            "mr_td": 48,
            "rtmr0": 48,
            "rtmr1": 48,
            "rtmr2": 48,
            "rtmr3": 48,
            "mr_seam": 48,
            "mr_signer_seam": 48,
            "mr_config_id": 48,
            "mr_owner": 48,
            "mr_owner_config": 48,
            "report_data": 64,
            "xfam": 8,
            "td_attributes": 8,
            "fmspc": 6,
        },
        rules=_COMMON_RULES
        | {
            "allowed_tcb_status",
            "allowed_advisories",
            "denied_advisories",
            "sept_ve_disable",
            "events",
        },
        has_tcb_status=True,
        measurement_keys=frozenset({"mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"}),
    ),
    "sgx": PlatformSchema(
        value_keys={"mr_enclave": 32, "mr_signer": 32, "report_data": 64, "fmspc": 6},
        int_keys=frozenset({"isv_prod_id", "isv_svn"}),
        min_keys=frozenset({"isv_svn"}),
        rules=_COMMON_RULES | {"allowed_tcb_status", "allowed_advisories", "denied_advisories"},
        has_tcb_status=True,
        measurement_keys=frozenset({"mr_enclave", "mr_signer"}),
    ),
    "tpm": PlatformSchema(
        value_keys={"ak_name": 0},
        rules=_COMMON_RULES | {"pcrs", "ima_allowed", "ima_denied"},
        measurement_keys=frozenset({"pcrs"}),
    ),
}

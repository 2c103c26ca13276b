"""TCB evaluation: QE identity, TDX module identity, TCB level matching and the convergence of
the platform, TDX module and QE statuses into one Intel TCB status (Intel QVL 4.1.2.5.12,
4.1.2.5.16, 4.1.2.5.18, 4.1.2.9.5-4.1.2.9.10).

The result is a status, never a decision: which statuses are acceptable is policy.
"No matching TCB level" (Intel: TCB_NOT_SUPPORTED) and identity mismatches are errors.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

from atls.errors import VerificationError
from atls.evidence.tdx._collateral import (
    ModuleIdentity,
    ModuleTcbLevel,
    QeIdentity,
    QeTcbLevel,
    TcbInfo,
    TcbLevel,
)
from atls.evidence.tdx._pck import SgxExtension
from atls.evidence.tdx._quote import EnclaveReport, TdReport

__all__ = [
    "TcbResult",
    "check_qe_identity",
    "check_tdx_module_identity",
    "converge",
    "evaluate_tcb",
]


class TcbResult(NamedTuple):
    status: str
    advisory_ids: tuple[str, ...]
    platform_status: str
    platform_level: TcbLevel
    module_status: str | None
    module_level: ModuleTcbLevel | None
    qe_status: str
    relaunch_advised: bool | None


def check_qe_identity(qe: QeIdentity, report: EnclaveReport, *, fmt: str) -> QeTcbLevel:
    """4.1.2.9.5-4.1.2.9.10: MISCSELECT and ATTRIBUTES under their masks, MRSIGNER,
    ISVPRODID, then the first QE TCB level whose ISVSVN is <= the QE's."""
    code = f"{fmt}.qe_identity.mismatch"
    # 4.1.2.9.5 MISCSELECT (the report's value under the mask equals the identity's).
    if report.misc_select & qe.miscselect_mask != qe.miscselect:
        raise VerificationError(
            f"QE MISCSELECT {report.misc_select:08x} does not match the QE identity "
            f"({qe.miscselect:08x} under mask {qe.miscselect_mask:08x})",
            code=code,
        )
    # 4.1.2.9.6 ATTRIBUTES under the mask.
    attributes = int.from_bytes(report.attributes, "big")
    if attributes & int.from_bytes(qe.attributes_mask, "big") != int.from_bytes(
        qe.attributes, "big"
    ):
        raise VerificationError(
            f"QE ATTRIBUTES {report.attributes.hex()} do not match the QE identity "
            f"({qe.attributes.hex()} under mask {qe.attributes_mask.hex()})",
            code=code,
        )
    # 4.1.2.9.7 MRSIGNER.
    if report.mr_signer != qe.mrsigner:
        raise VerificationError(
            f"QE MRSIGNER {report.mr_signer.hex()} is not the QE identity's {qe.mrsigner.hex()}",
            code=code,
        )
    # 4.1.2.9.8 ISVPRODID.
    if report.isv_prod_id != qe.isv_prod_id:
        raise VerificationError(
            f"QE ISVPRODID {report.isv_prod_id} is not the QE identity's {qe.isv_prod_id}",
            code=code,
        )
    # 4.1.2.9.9 the QE TCB level.
    for level in qe.tcb_levels:
        if level.isv_svn <= report.isv_svn:
            return level
    raise VerificationError(
        f"QE ISVSVN {report.isv_svn} is below every TCB level of the QE identity",
        code=f"{fmt}.qe_identity.no_matching_level",
    )


def check_tdx_module_identity(info: TcbInfo, td: TdReport, *, fmt: str) -> ModuleIdentity | None:
    """4.1.2.5.12: MRSIGNERSEAM and SEAMATTRIBUTES against ``tdxModule`` or, when the TDX
    module major version (TEE_TCB_SVN[1]) is not 0, against the ``tdxModuleIdentities``
    entry ``TDX_<version>``. Returns that entry (or None for version 0)."""
    code = f"{fmt}.tcb.module_mismatch"
    assert info.tdx_module is not None  # required by the TDX TCB info parser
    expected: ModuleIdentity = info.tdx_module
    identity: ModuleIdentity | None = None
    version = td.tee_tcb_svn[1]
    if version > 0:
        if info.tdx_module_identities is None:
            raise VerificationError(
                f"TDX module version {version} but the TCB info has no tdxModuleIdentities",
                code=code,
            )
        identity = _find_module(info.tdx_module_identities, version)
        if identity is None:
            raise VerificationError(
                f"the TCB info has no TDX module identity TDX_{version:02X}", code=code
            )
        expected = identity
    if td.mr_signer_seam != expected.mrsigner:
        raise VerificationError(
            f"MRSIGNERSEAM {td.mr_signer_seam.hex()} is not the TDX module signer "
            f"{expected.mrsigner.hex()}",
            code=code,
        )
    # Under the mask the attributes are the expected ones; outside it they are zero.
    actual = int.from_bytes(td.seam_attributes, "big")
    want = int.from_bytes(expected.attributes, "big")
    mask = int.from_bytes(expected.attributes_mask, "big")
    if actual & mask != want & mask or actual & ~mask:
        i = next(
            i
            for i, (a, w, m) in enumerate(
                zip(td.seam_attributes, expected.attributes, expected.attributes_mask, strict=True)
            )
            if a & m != w & m or a & ~m & 0xFF
        )
        raise VerificationError(
            f"SEAMATTRIBUTES {td.seam_attributes.hex()} do not match the TDX module "
            f"identity (byte {i})",
            code=code,
        )
    return identity


def _find_module(identities: tuple[ModuleIdentity, ...], version: int) -> ModuleIdentity | None:
    want = f"TDX_{version:02X}"
    return next((m for m in identities if m.id.upper() == want), None)


def _sgx_ge(pck: tuple[int, ...], level: TcbLevel) -> bool:
    if len(pck) != len(level.sgx_svns):
        raise ValueError("SVN vectors of different lengths")
    return all(map(operator.ge, pck, level.sgx_svns))


def _tdx_ge(tee_tcb_svn: bytes, level: TcbLevel) -> bool:
    assert level.tdx_svns is not None
    # Intel: compare from index 2 when TEE_TCB_SVN[1] (the module major version) is not 0;
    # the module's own SVN is then judged by its module identity.
    start = 2 if tee_tcb_svn[1] > 0 else 0
    return all(map(operator.ge, tee_tcb_svn[start:16], level.tdx_svns[start:16]))


def converge(status: str, other: str | None) -> str:
    """Intel's convergence of a TCB level status with a QE or TDX module status."""
    if other == "OutOfDate":
        if status in ("UpToDate", "SWHardeningNeeded"):
            return "OutOfDate"
        if status in ("ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"):
            return "OutOfDateConfigurationNeeded"
    if other == "Revoked":
        return "Revoked"
    return status


def _merge_advisories(*lists: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for lst in lists:
        for a in lst:
            if a not in out:
                out.append(a)
    return tuple(out)


def evaluate_tcb(
    info: TcbInfo,
    ext: SgxExtension,
    td: TdReport | None,
    module: ModuleIdentity | None,
    qe_level: QeTcbLevel,
    *,
    fmt: str,
) -> TcbResult:
    """4.1.2.5.18: the TCB level of the platform, converged with the TDX module and QE."""
    # 4.1.2.5.18.1-3: first level (highest first) whose SGX component SVNs and PCESVN the PCK
    # certificate meets; for TDX, the first such level whose TDX components TEE_TCB_SVN meets.
    sgx_level: TcbLevel | None = None
    tdx_level: TcbLevel | None = None
    for level in info.tcb_levels:
        if not (_sgx_ge(ext.tcb_components, level) and ext.pce_svn >= level.pce_svn):
            continue
        if td is None:
            sgx_level = level
            break
        if sgx_level is None:
            sgx_level = level
        if _tdx_ge(td.tee_tcb_svn, level):
            tdx_level = level
            break
    if sgx_level is None or (td is not None and tdx_level is None):
        which = "SGX" if sgx_level is None else "TDX"
        raise VerificationError(
            f"no matching TCB level: the platform's {which} TCB (PCK SVNs "
            f"{list(ext.tcb_components)}, PCESVN {ext.pce_svn}"
            + (f", TEE_TCB_SVN {td.tee_tcb_svn.hex()}" if td is not None else "")
            + f") is below every TCB level of the TCB info for FMSPC {info.fmspc.hex()}",
            code=f"{fmt}.tcb.no_matching_level",
        )
    qe_status = qe_level.status
    if td is None:
        # SGX: converge the platform status with the QE status.
        return TcbResult(
            status=converge(sgx_level.status, qe_status),
            advisory_ids=_merge_advisories(sgx_level.advisory_ids, qe_level.advisory_ids),
            platform_status=sgx_level.status,
            platform_level=sgx_level,
            module_status=None,
            module_level=None,
            qe_status=qe_status,
            relaunch_advised=None,
        )
    assert tdx_level is not None
    # 4.1.2.5.18.4.1: the TDX module's own TCB level (module version 0 has none).
    module_level: ModuleTcbLevel | None = None
    module_status = "UpToDate"
    if td.tee_tcb_svn[1] > 0:
        assert module is not None
        module_level = next(
            (lv for lv in module.tcb_levels if td.tee_tcb_svn[0] >= lv.isv_svn), None
        )
        if module_level is None:
            raise VerificationError(
                f"TDX module ISVSVN {td.tee_tcb_svn[0]} is below every TCB level of "
                f"module identity {module.id}",
                code=f"{fmt}.tcb.no_matching_module_level",
            )
        module_status = module_level.status
    tdx_status = converge(tdx_level.status, module_status)
    # 4.1.2.5.18.4.3: TD 1.5 - would relaunching the TD bring it up to date?
    relaunch: bool | None = None
    if td.tee_tcb_svn2 is not None:
        relaunch = _relaunch_advised(
            info, td.tee_tcb_svn2, sgx_level.status, tdx_status, module_status, qe_status, fmt
        )
    final = converge(tdx_status, qe_status)
    return TcbResult(
        status=final,
        advisory_ids=_merge_advisories(
            tdx_level.advisory_ids,
            module_level.advisory_ids if module_level is not None else (),
            qe_level.advisory_ids,
        ),
        platform_status=tdx_level.status,
        platform_level=tdx_level,
        module_status=module_status if module_level is not None else None,
        module_level=module_level,
        qe_status=qe_status,
        relaunch_advised=relaunch,
    )


def _relaunch_advised(
    info: TcbInfo,
    svn2: bytes,
    sgx_status: str,
    tdx_status: str,
    module_status: str,
    qe_status: str,
    fmt: str,
) -> bool:
    """Intel's TD relaunch check: the TD is out of date only because of the TDX module it was
    launched with, and TEE_TCB_SVN2 (the module now running) meets the latest level.
    Reported as a claim; the status keeps Intel's non-relaunch name."""
    if qe_status in ("OutOfDate", "Revoked"):
        return False
    if sgx_status not in (
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
    ):
        return False
    if tdx_status not in ("OutOfDate", "OutOfDateConfigurationNeeded"):
        return False
    if module_status != "OutOfDate" or not info.tcb_levels:
        return False
    latest = info.tcb_levels[0]
    assert latest.tdx_svns is not None
    if svn2[1] == 0:
        return svn2[0] >= latest.tdx_svns[0] and svn2[2] >= latest.tdx_svns[2]
    identity = _find_module(info.tdx_module_identities or (), svn2[1])
    if identity is None:
        raise VerificationError(
            f"TEE_TCB_SVN2 names TDX module version {svn2[1]}, which the TCB info does not list",
            code=f"{fmt}.tcb.module_mismatch",
        )
    if not identity.tcb_levels:
        return False
    return svn2[0] >= identity.tcb_levels[0].isv_svn and svn2[2] >= latest.tdx_svns[2]

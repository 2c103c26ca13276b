"""Vendor roots pinned by the SHA-256 fingerprint of their DER certificate.

A certificate is trusted as a root only if its fingerprint is listed here (or it is a
simulated root from :mod:`atls.testing` and the caller opted in). Adding a root is a
code change, reviewed like one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PINS", "Pin"]


@dataclass(frozen=True)
class Pin:
    name: str
    vendor: str
    sha256: str
    description: str


PINS: tuple[Pin, ...] = (
    Pin(
        "amd-ark-milan",
        "amd",
        "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
        "AMD Root Key, EPYC Milan (CN=ARK-Milan)",
    ),
    Pin(
        "amd-ark-genoa",
        "amd",
        "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
        "AMD Root Key, EPYC Genoa (CN=ARK-Genoa)",
    ),
    Pin(
        "amd-ark-turin",
        "amd",
        "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
        "AMD Root Key, EPYC Turin (CN=ARK-Turin)",
    ),
    Pin(
        "intel-sgx-root",
        "intel",
        "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3",
        "Intel SGX Root CA (signs PCK, TCB signing and QE identity chains)",
    ),
    Pin(
        "google-vtpm-ek-ak-root",
        "google",
        "594759594b9b61524f6c8ef668f7177f7b9066bc0674f2f49fe9e052be78beb2",
        "Google Cloud EK/AK CA Root (vTPM attestation keys)",
    ),
    Pin(
        "google-vtpm-ek-root-1",
        "google",
        "9bd5285f8fb18502a7947e621ffd470266f49fcd3b73e19a190f690ad32a7caf",
        "Google Cloud tpm_ek_v1_cloud_host_root (legacy vTPM EK root)",
    ),
)

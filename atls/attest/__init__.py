"""Who produces evidence: configfs-tsm (TDX/SNP guests), a TPM, or the simulated TEE."""

from atls.attest._base import Attester
from atls.attest.simulated import SimulatedAttester

__all__ = ["Attester", "SimulatedAttester"]

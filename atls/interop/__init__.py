"""Adapters for the certificate formats and bindings of other attested-TLS systems.

* :mod:`atls.interop.dstack` - dstack RA-TLS certificates (Intel TDX);
* :mod:`atls.interop.secretvm` - SecretVM's ``/cpu.html`` quote bound to the TLS key;
* :mod:`atls.interop.cocos` - Cocos' certificate extensions and SHA3-512 nonce binding.

Each adapter sits on the platform verifiers of :mod:`atls.evidence` and never changes them.
"""

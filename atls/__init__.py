"""atls: attested TLS for Python."""

__version__ = "0.1.0"

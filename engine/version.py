"""The engine's version: one place, read by the package, the fingerprint and the server's OpenAPI page."""
__version__ = "0.1.0"

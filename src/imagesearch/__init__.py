"""Self-hosted visual product search speaking AliExpress's ``aliexpress.ds.image.searchV2``."""

__version__ = "0.1.0"

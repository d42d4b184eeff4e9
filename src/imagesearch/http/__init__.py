"""The HTTP edge: the IOP/TOP gateway the AliExpress SDKs call, and the service's own routes."""

"""Ingest: catalog files in, catalog rows and index vectors out, atomically."""

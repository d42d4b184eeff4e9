"""Vector indexes: they know only integer ids and unit vectors, nothing of products."""

"""The catalog: products, their texts, prices, shipping and images, in SQLite."""

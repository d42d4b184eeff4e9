"""Who may call the API: apps (key, secret, rate limit) and optional access tokens."""

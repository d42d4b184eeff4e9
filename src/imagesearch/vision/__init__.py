"""Vision: turning image bytes into pixels (``decode``) and pixels into vectors (``embedder``).

Nothing here knows about storage: callers hand in bytes or images and get arrays back.
"""

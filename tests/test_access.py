"""Apps and access tokens: tokens are stored only as hashes, and clear ones of an earlier version are migrated."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import create_engine, insert, select

from imagesearch.access.store import AccessStore, tokens_table


def test_tokens_are_stored_hashed_and_still_work(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a.sqlite'}")
    access = AccessStore(engine)
    app = access.create_app("shop")
    token = access.create_token(app.app_key)
    with engine.connect() as connection:
        stored = connection.scalar(select(tokens_table.c.token))
    assert token not in stored and stored.startswith("sha256:")
    assert access.token_valid(token, app.app_key) and not access.token_valid(token, "other") and not access.token_valid("nope", app.app_key)
    assert access.revoke_token(token) and not access.token_valid(token, app.app_key)


def test_clear_tokens_of_an_earlier_version_are_hashed_on_open(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a.sqlite'}")
    access = AccessStore(engine)
    app = access.create_app("shop")
    with engine.begin() as connection:
        connection.execute(insert(tokens_table).values(token="old-clear-token", app_key=app.app_key, created_at=time.time(),
                                                       expires_at=time.time() + 3600))
    reopened = AccessStore(engine)
    with engine.connect() as connection:
        assert "old-clear-token" not in set(connection.scalars(select(tokens_table.c.token)))
    assert reopened.token_valid("old-clear-token", app.app_key)

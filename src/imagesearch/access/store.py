"""Apps and access tokens, kept in the catalog database (their own tables).

An app is what the AliExpress SDKs call an app key and app secret; requests are
signed with the secret, so it is kept as it is.  Access tokens (``access_token`` /
``session``) are optional: a request that carries one must carry a valid one.
A token is only ever compared, so only its SHA-256 is stored (tokens stored in
clear by an earlier version are hashed when the store opens).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Column, Float, MetaData, String, Table, insert, inspect, select, update
from sqlalchemy.engine import Engine

_metadata = MetaData()
apps_table = Table(
    "apps",
    _metadata,
    Column("app_key", String(32), primary_key=True),
    Column("secret", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("rate_limit", Float, nullable=False),
    Column("methods", String(2000), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)
tokens_table = Table(
    "access_tokens",
    _metadata,
    Column("token", String(80), primary_key=True),  # "sha256:" + the hex digest
    Column("app_key", String(32), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
)


@dataclass(frozen=True)
class App:
    app_key: str
    secret: str
    name: str
    rate_limit: float
    methods: str
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def may_call(self, method: str) -> bool:
        """Apps created with a method list may call only those; others may call every method."""
        return not self.methods or method in self.methods.split(",")


#: Prefix of a stored token hash (a clear token, as an earlier version stored it, has none).
HASHED = "sha256:"


def _hashed(token: str) -> str:
    return HASHED + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


#: App keys are short numbers; a longer one cannot exist.
MAX_APP_KEY = 32
#: How long a server process trusts an app it looked up: a revocation reaches every server within this.
APP_CACHE_SECONDS = 1.0


class AccessStore:
    """Create, list, look up and revoke apps and tokens.

    Lookups by the gateway (one per request) are cached per process for
    :data:`APP_CACHE_SECONDS`, unknown keys included, so a burst of calls
    costs one query a second per app instead of one each.
    """

    def __init__(self, engine: Engine, read_only: bool = False) -> None:
        self.engine = engine
        self._apps: dict[str, tuple[float, App | None]] = {}
        self._lock = threading.Lock()
        if read_only:  # nothing is created or migrated; a catalog that never had apps has none
            self._tables = all(inspect(engine).has_table(table.name) for table in _metadata.sorted_tables)
            return
        _metadata.create_all(engine)
        self._tables = True
        self._hash_clear_tokens()

    def _hash_clear_tokens(self) -> None:
        """Migrate tokens an earlier version stored in clear to their hashes (once; a no-op after)."""
        with self.engine.begin() as connection:
            clear = [token for token in connection.scalars(select(tokens_table.c.token)) if not token.startswith(HASHED)]
            for token in clear:
                connection.execute(update(tokens_table).where(tokens_table.c.token == token).values(token=_hashed(token)))

    def create_app(self, name: str, rate_limit: float = 50.0, methods: tuple[str, ...] = ()) -> App:
        """A new app with a random numeric key (as AliExpress issues) and a 32-hex-digit secret."""
        app = App(str(500000 + secrets.randbelow(500000)), secrets.token_hex(16), name, rate_limit, ",".join(methods), time.time(), None)
        with self.engine.begin() as connection:
            connection.execute(insert(apps_table).values(**app.__dict__))
        return app

    def get_app(self, app_key: str) -> App | None:
        if not self._tables:
            return None
        with self.engine.connect() as connection:
            row = connection.execute(select(apps_table).where(apps_table.c.app_key == app_key)).first()
        return App(**row._mapping) if row else None

    def cached_app(self, app_key: str) -> App | None:
        """:meth:`get_app`, trusted for :data:`APP_CACHE_SECONDS` (the lookup of every authenticated call).

        A key longer than any app key is unknown without a lookup (nor a cache entry).
        """
        if len(app_key) > MAX_APP_KEY:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._apps.get(app_key)
        if hit is not None and now - hit[0] < APP_CACHE_SECONDS:
            return hit[1]
        app = self.get_app(app_key)
        with self._lock:
            if len(self._apps) > 10_000:  # unknown keys sent by a flood must not grow it without bound
                self._apps.clear()
            self._apps[app_key] = (now, app)
        return app

    def list_apps(self) -> list[App]:
        if not self._tables:
            return []
        with self.engine.connect() as connection:
            return [App(**row._mapping) for row in connection.execute(select(apps_table).order_by(apps_table.c.created_at))]

    def revoke_app(self, app_key: str) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                update(apps_table).where(apps_table.c.app_key == app_key, apps_table.c.revoked_at.is_(None)).values(revoked_at=time.time())
            )
        return bool(result.rowcount)

    def create_token(self, app_key: str, days: float = 365.0) -> str:
        """A new token for ``app_key``: returned once, stored only as its hash."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as connection:
            connection.execute(
                insert(tokens_table).values(token=_hashed(token), app_key=app_key, created_at=now, expires_at=now + days * 86400)
            )
        return token

    def revoke_token(self, token: str) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                update(tokens_table).where(tokens_table.c.token == _hashed(token), tokens_table.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return bool(result.rowcount)

    def token_valid(self, token: str, app_key: str) -> bool:
        """The token exists, belongs to ``app_key``, is not revoked and not expired."""
        if not self._tables:
            return False
        with self.engine.connect() as connection:
            row = connection.execute(select(tokens_table).where(tokens_table.c.token == _hashed(token))).first()
        return bool(row and row.app_key == app_key and row.revoked_at is None and row.expires_at > time.time())

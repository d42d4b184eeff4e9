"""The ``imagesearch`` command line: import, delete, search, info, rates, reindex."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .catalog.meta import CALIBRATION_KEY, CALIBRATION_REPORT_KEY, EMBEDDER_KEY, LAST_WRITE_KEY
from .config import ConfigError, Settings, load_settings
from .errors import ImageSearchError, RequestError
from .ingest.importer import ImportRejected, delete_products, embed_file, import_file
from .ingest.reindex import reindex
from .pricing.rates import RatesError, load_rates, parse_rates, save_rates
from .search.engine import iso_time, same_thresholds_from
from .search.ranking import SameThresholds
from .workspace import Workspace, write_problem

if TYPE_CHECKING:
    import socket

    from .access.store import AccessStore


#: Where ``serve`` listens by default; also the base of thumbnail URLs the CLI prints (unless ``public_url`` is set).
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
DEFAULT_BASE_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def _echo_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _workspace(ctx: click.Context) -> Workspace:
    settings: Settings = ctx.obj["settings"]
    return Workspace(settings)


class _Group(click.Group):
    """Turns our errors into a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImportRejected as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except RequestError as exc:
            click.echo(f"error [{exc.code}]: {exc.message}", err=True)
            sys.exit(1)
        except (ImageSearchError, ConfigError, RatesError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="IMAGESEARCH_DATA_DIR",
    default=None,
    help="Folder holding the catalog, index and model cache (default ./data, or $IMAGESEARCH_DATA_DIR).",
)
@click.version_option(package_name="imagesearch")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None) -> None:
    """Visual product search over your own catalog, speaking AliExpress's searchV2."""
    # App secrets, token hashes, the catalog and its index: whatever this process creates is its user's alone
    # (files 0600, folders 0700), whatever the shell's umask.
    os.umask(0o077)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("imagesearch").setLevel(logging.INFO)
    ctx.ensure_object(dict)
    ctx.obj["settings"] = load_settings(data_dir)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Make FILE the whole catalog: products absent from it are deleted.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows; write rejected ones to --rejects.")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), help="Where rejected rows go (default FILE.rejects.jsonl).")
@click.option("--format", "file_format", type=click.Choice(["jsonl", "csv"]), help="File format (default: by extension).")
@click.option(
    "--images-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder relative image paths are resolved in (default: FILE's folder); paths may not leave it.",
)
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: when stderr is a terminal).")
@click.pass_context
def import_command(
    ctx: click.Context,
    file: Path,
    replace: bool,
    skip_invalid: bool,
    rejects: Path | None,
    file_format: str | None,
    images_root: Path | None,
    progress: bool | None,
) -> None:
    """Import products from a JSON Lines or CSV FILE (atomic: all or nothing)."""
    workspace = _workspace(ctx)
    rejects_path = rejects or (file.with_name(file.name + ".rejects.jsonl") if skip_invalid else None)
    report = import_file(
        workspace,
        file,
        replace=replace,
        skip_invalid=skip_invalid,
        rejects_path=rejects_path,
        file_format=file_format,
        images_root=images_root,
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    summary = report.as_dict()
    if report.rejected:
        summary["rejects_file"] = str(rejects_path)
        for error in report.rejected[:20]:
            click.echo(f"rejected: {error.describe()}", err=True)
    summary["compaction"] = _compact_if_due(workspace)
    _echo_json(summary)


@main.command("embed")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--shard", default="0/1", show_default=True, help="Embed the rows of shard I of N (I/N, counting from 0).")
@click.option("--format", "file_format", type=click.Choice(["jsonl", "csv"]), help="File format (default: by extension).")
@click.option("--images-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder relative image paths are resolved in (default: FILE's folder).")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: when stderr is a terminal).")
@click.pass_context
def embed_command(ctx: click.Context, file: Path, shard: str, file_format: str | None, images_root: Path | None, progress: bool | None) -> None:
    """Embed FILE's images ahead of its import, one shard per process or machine (searches see nothing yet).

    With a shared PostgreSQL catalog, run `embed --shard I/N` on N machines, then `import FILE` once: it embeds
    nothing again and only commits.
    """
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise click.BadParameter(f"{shard!r} is not I/N (e.g. 0/4)", param_hint="--shard") from None
    workspace = _workspace(ctx)
    report = embed_file(workspace, file, (index, count), images_root=images_root, file_format=file_format,
                        progress=sys.stderr.isatty() if progress is None else progress)
    for error in report.rejected[:20]:
        click.echo(f"rejected: {error.describe()}", err=True)
    _echo_json({"images_embedded": report.images_embedded, "images_reused": report.images_reused,
                "rows_rejected": len(report.rejected), "seconds": round(report.seconds, 1)})


@main.command("delete")
@click.argument("product_ids", nargs=-1, required=True)
@click.pass_context
def delete_command(ctx: click.Context, product_ids: tuple[str, ...]) -> None:
    """Delete products by PRODUCT_IDS (atomic)."""
    workspace = _workspace(ctx)
    report = delete_products(workspace, list(product_ids))
    _echo_json({"products_deleted": report.products_deleted, "images_removed": report.images_removed, "generation": report.generation,
                "compaction": _compact_if_due(workspace)})


def _compact_if_due(workspace: Workspace) -> dict[str, Any] | None:
    """Compact after a write when the thresholds say so (``compact_max_deltas``, ``compact_delta_ratio``)."""
    from .ingest.compact import compact

    report = compact(workspace, force=False)
    return report.__dict__ if report.compacted else None


@main.command("compact")
@click.option("--if-due", is_flag=True, help="Only when compact_max_deltas or compact_delta_ratio says so.")
@click.option("--nice", "niceness", type=click.IntRange(0, 19), default=0, help="Run at a lower CPU priority (as after HTTP writes).")
@click.pass_context
def compact_command(ctx: click.Context, if_due: bool, niceness: int) -> None:
    """Fold the index's delta segments and tombstones into a new base (searches and writes go on)."""
    from .ingest.compact import compact

    if niceness:
        os.nice(niceness)
    _echo_json(compact(_workspace(ctx), force=not if_due).__dict__)


@main.command("search")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "search_type", type=click.Choice(["similar", "same"]), default="similar", show_default=True)
@click.option("--currency", default=None, help="ISO 4217 code (default from settings, USD).")
@click.option("--lang", default=None, help="Language of titles, e.g. en, fr, pt-BR.")
@click.option("--ship-to", default=None, help="ISO 3166-1 alpha-2 country the products must ship to.")
@click.option("--sort", "sort_type", type=click.Choice(["best", "price", "orders"]), default="best", show_default=True)
@click.option("--order", "sort_order", type=click.Choice(["asc", "desc"]), default=None, help="Default: desc for best/orders, asc for price.")
@click.option("--page-size", type=int, default=None)
@click.option("--page-no", type=int, default=None)
@click.option("--start-row-key", default=None, help="next_start_row_key of an earlier page.")
@click.option("--region", default=None, help="Search this box of the photo: x,y,width,height in pixels (or fractions, all <= 1).")
@click.option("--crop/--no-crop", default=None, help="Search the main subject located in the photo (default: subject_crop).")
@click.pass_context
def search_command(ctx: click.Context, image: Path, **options: Any) -> None:
    """Search the catalog with IMAGE; prints the searchV2 JSON response."""
    from .search.engine import SearchEngine
    from .search.presentation import present_page
    from .search.searchv2 import render, render_error

    workspace = _workspace(ctx)
    settings = workspace.settings
    engine = SearchEngine(workspace)
    param0 = {key: value for key, value in options.items() if value is not None}
    try:
        page = engine.search(engine.parse(param0, image=image.read_bytes(), image_param="PHOTO"))
        result: Any = render(page, present_page(page, settings.default_lang, settings.public_url or DEFAULT_BASE_URL))
    except RequestError as exc:
        _echo_json({"aliexpress_ds_image_searchV2_response": {"result": render_error(exc)}})
        sys.exit(1)
    _echo_json({"aliexpress_ds_image_searchV2_response": {"result": result}})


@main.command("calibrate")
@click.option("--samples", type=click.IntRange(5, 5000), default=100, show_default=True, help="Catalog photos to make copies of.")
@click.option("--max-fp", type=click.FloatRange(0.0, 0.5), default=0.01, show_default=True, help="Largest false-positive rate allowed.")
@click.option("--dry-run", is_flag=True, help="Measure and print, but keep the current thresholds.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: when stderr is a terminal).")
@click.pass_context
def calibrate_command(ctx: click.Context, samples: int, max_fp: float, dry_run: bool, progress: bool | None) -> None:
    """Set the "same" thresholds for this catalog from synthetic copies of its photos."""
    from .search.calibration import calibrate_same
    from .search.engine import SearchEngine

    engine = SearchEngine(_workspace(ctx))
    report = calibrate_same(
        engine, samples=samples, max_fp=max_fp, save=not dry_run, progress=sys.stderr.isatty() if progress is None else progress
    )
    _echo_json({
        **report.thresholds.numbers(),
        "recall": report.recall,
        "false_positive_rate": report.false_positive_rate,
        "positives": report.positives,
        "negatives": report.negatives,
        "saved": not dry_run,
        "seconds": round(report.seconds, 1),
    })


@main.command("serve")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Server processes sharing the data directory.")
@click.pass_context
def serve_command(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Serve the gateway (/sync) and the JSON API (/v1) over the data directory."""
    _serve(ctx.obj["settings"], host, port, workers)


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    from .http.protocol import HEADER_TIMEOUT_ENV, HeadDeadlineProtocol

    os.environ["IMAGESEARCH_DATA_DIR"] = str(settings.data_dir)
    os.environ["IMAGESEARCH_WORKERS"] = str(workers)
    # Share the cores out between workers unless told otherwise (oversubscription costs latency).
    os.environ.setdefault("IMAGESEARCH_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    os.environ.setdefault("IMAGESEARCH_INDEX_THREADS", "1")
    os.environ[HEADER_TIMEOUT_ENV] = str(settings.header_timeout)
    problem = write_problem(settings.data_dir) if settings.data_dir.exists() and not settings.read_only else None
    if problem:  # searches can still be answered: start read-only rather than not at all
        click.echo(f"warning: {problem}; serving read-only (searches answer, catalog writes are refused)", err=True)
        os.environ["IMAGESEARCH_READ_ONLY"] = "true"
        settings = settings.with_overrides(read_only=True)
    _ = Workspace(settings).embedder  # export the model once, before workers start
    config = uvicorn.Config(
        "imagesearch.http.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=HeadDeadlineProtocol,  # uvicorn's httptools protocol with a deadline on request heads
        timeout_keep_alive=5,  # idle keep-alive connections are closed after this many seconds
        log_level="info",
        access_log=False,  # our own structured access log replaces uvicorn's
    )
    if workers == 1:
        uvicorn.Server(config).run()
        return
    import shutil
    import tempfile

    from uvicorn.supervisors import Multiprocess

    # Each worker writes its metrics to files here and /metrics, on whichever worker, adds them all up
    # (prometheus_client's multiprocess mode); set before the workers import the app.
    metrics = tempfile.mkdtemp(prefix="imagesearch-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics
    try:
        Multiprocess(config, sockets=[_listening_socket(host, port)]).run()
    finally:
        shutil.rmtree(metrics, ignore_errors=True)


def _listening_socket(host: str, port: int) -> "socket.socket":
    """A TCP listener whose accepted connections get TCP_NODELAY.

    uvicorn's own multi-worker listener leaves ``proto`` at 0, so asyncio never
    disables Nagle on its connections and each keep-alive response waits ~40 ms
    for the client's delayed ACK (uvicorn issue #3149); declaring IPPROTO_TCP avoids it.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


@main.command("demo")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), help="A folder of product photos (class subfolders become categories).")
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--no-serve", is_flag=True, help="Build the catalog and the app key, print the examples, and exit.")
@click.pass_context
def demo_command(ctx: click.Context, images: Path | None, host: str, port: int, workers: int, no_serve: bool) -> None:
    """Build a demo catalog (if the data directory has none), create a demo app key, and serve it."""
    from .access.store import AccessStore
    from .democatalog import write_demo_catalog, write_folder_catalog

    settings: Settings = ctx.obj["settings"]
    workspace = Workspace(settings)
    if workspace.catalog.counts()["products"] == 0:
        if images is not None:
            catalog_file = write_folder_catalog(images, settings.data_dir / "demo-catalog.jsonl")
            report = import_file(workspace, catalog_file, images_root=images, skip_invalid=True, progress=sys.stderr.isatty())
        else:
            catalog_file = write_demo_catalog(settings.data_dir / "demo-catalog")
            report = import_file(workspace, catalog_file, progress=sys.stderr.isatty())
        click.echo(f"imported {report.products_written} products ({report.images_embedded} images) into {settings.data_dir}", err=True)
    access = AccessStore(workspace.catalog.engine)
    app = next((app for app in access.list_apps() if app.name == "demo" and app.active), None) or access.create_app("demo")
    sample = _sample_image(workspace)
    click.echo(_DEMO_TEXT.format(base=f"http://{host}:{port}", key=app.app_key, secret=app.secret, image=sample))
    if not no_serve:
        _serve(settings, host, port, workers)


def _sample_image(workspace: Workspace) -> str:
    """A local catalog photo to use in the printed examples."""
    view = workspace.catalog.products_by_pk([1]).get(1)
    source = view.image_sources[0] if view and view.image_sources else "photo.jpg"
    return source if not source.startswith(("http://", "https://")) else "photo.jpg"


_DEMO_TEXT = """
imagesearch demo
  search page:  {base}/
  API docs:     {base}/docs
  app_key:      {key}
  app_secret:   {secret}

Search with curl (the JSON API):
  curl -s -F file=@{image} -F currency=EUR -F lang=fr {base}/v1/search

Search as the AliExpress SDKs do (POST /sync, md5-signed), in Python:

import base64, hashlib, json, time, urllib.parse, urllib.request
key, secret = "{key}", "{secret}"
param0 = json.dumps({{"image_base64": base64.b64encode(open("{image}", "rb").read()).decode(),
                     "search_type": "similar", "currency": "USD", "lang": "en", "sort_type": "best"}})
params = {{"method": "aliexpress.ds.image.searchV2", "app_key": key, "sign_method": "md5",
          "timestamp": str(int(time.time() * 1000)), "format": "json", "v": "2.0", "param0": param0}}
text = secret + "".join(k + params[k] for k in sorted(params)) + secret
params["sign"] = hashlib.md5(text.encode()).hexdigest().upper()
reply = urllib.request.urlopen("{base}/sync", urllib.parse.urlencode(params).encode())
print(json.dumps(json.load(reply), indent=2)[:2000])
"""


@main.group("apps")
def apps_group() -> None:
    """App keys and secrets that may call the gateway."""


def _access(ctx: click.Context) -> "AccessStore":
    from .access.store import AccessStore

    return AccessStore(_workspace(ctx).catalog.engine)


@apps_group.command("create")
@click.argument("name")
@click.option("--rate-limit", type=click.FloatRange(0.1, 100_000), default=50.0, show_default=True, help="Requests per second.")
@click.option("--method", "methods", multiple=True, help="Allow only this API (repeatable; default: every API).")
@click.pass_context
def apps_create(ctx: click.Context, name: str, rate_limit: float, methods: tuple[str, ...]) -> None:
    """Create an app; prints its app_key and secret."""
    app = _access(ctx).create_app(name, rate_limit, methods)
    _echo_json({"app_key": app.app_key, "secret": app.secret, "name": app.name, "rate_limit": app.rate_limit, "methods": list(methods) or "all"})


@apps_group.command("list")
@click.pass_context
def apps_list(ctx: click.Context) -> None:
    """List apps (secrets are not shown)."""
    _echo_json([
        {"app_key": app.app_key, "name": app.name, "rate_limit": app.rate_limit, "active": app.active}
        for app in _access(ctx).list_apps()
    ])


@apps_group.command("revoke")
@click.argument("app_key")
@click.pass_context
def apps_revoke(ctx: click.Context, app_key: str) -> None:
    """Revoke an app: its requests are refused from now on."""
    if not _access(ctx).revoke_app(app_key):
        raise ImageSearchError(f"no active app with key {app_key}")
    _echo_json({"revoked": app_key})


@main.group("tokens")
def tokens_group() -> None:
    """Optional access tokens (access_token / session) for an app."""


@tokens_group.command("create")
@click.argument("app_key")
@click.option("--days", type=click.FloatRange(0.001, 3650), default=365.0, show_default=True)
@click.pass_context
def tokens_create(ctx: click.Context, app_key: str, days: float) -> None:
    """Create an access token for APP_KEY."""
    access = _access(ctx)
    if access.get_app(app_key) is None:
        raise ImageSearchError(f"no app with key {app_key}")
    _echo_json({"access_token": access.create_token(app_key, days), "app_key": app_key, "days": days})


@tokens_group.command("revoke")
@click.argument("token")
@click.pass_context
def tokens_revoke(ctx: click.Context, token: str) -> None:
    """Revoke an access token."""
    if not _access(ctx).revoke_token(token):
        raise ImageSearchError("no active token matches")
    _echo_json({"revoked": True})


@main.command("demo-catalog")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(1, 10_000), default=60, show_default=True, help="Number of product designs.")
def demo_catalog_command(folder: Path, count: int) -> None:
    """Write a generated example catalog (pictures + catalog.jsonl) into FOLDER."""
    from .democatalog import write_demo_catalog

    path = write_demo_catalog(folder, count)
    click.echo(json.dumps({"catalog": str(path), "images": str(folder / "images")}))


@main.command("info")
@click.pass_context
def info_command(ctx: click.Context) -> None:
    """Counts, embedder, index structure and sizes."""
    from .ingest.compact import due

    workspace = _workspace(ctx)
    settings = workspace.settings
    generation = workspace.generation()
    state = workspace.index_state(generation)
    rates = load_rates(workspace.data_dir)
    last_write = workspace.catalog.get_meta(LAST_WRITE_KEY)
    described = dict(workspace.vectors.describe(state))
    compacted = described.pop("compacted_at", None)
    info: dict[str, Any] = {
        "data_dir": str(workspace.data_dir.resolve()),
        **workspace.catalog.counts(),
        "embedder": workspace.catalog.get_meta(EMBEDDER_KEY),
        "index": {
            "generation": generation,
            **described,
            "delta_vectors": state.delta_vectors if state else 0,
            "last_compaction_at": iso_time(compacted) if compacted else None,
            "compaction_due": due(state, settings.compact_max_deltas, settings.compact_delta_ratio) or None,
        },
        "catalog_bytes": workspace.catalog.size_bytes(),
        "last_write_at": iso_time(float(last_write)) if last_write else None,
        "same_thresholds": _same_thresholds(workspace),
        "rates": {"base": rates.base, "date": rates.date.isoformat(), "currencies": len(rates.rates)},
    }
    _echo_json(info)


def _same_thresholds(workspace: Workspace) -> dict[str, Any]:
    """The "same" thresholds searches use: calibrated for this catalog (with the measured rates), or the settings'."""
    stored = workspace.catalog.get_meta(CALIBRATION_KEY)
    thresholds = same_thresholds_from(stored, workspace.settings)
    rule = {**thresholds.numbers(), "source": thresholds.source}
    if stored and thresholds.source == "settings":  # calibrated for another verifier: not used
        return {**rule, "note": f"the catalog's calibration was made for the {SameThresholds.from_json(stored).verifier} verifier, "
                                "which this version replaced: run `imagesearch calibrate` again"}
    report = json.loads(workspace.catalog.get_meta(CALIBRATION_REPORT_KEY) or "{}")
    return {**rule, **{key: report[key] for key in ("recall", "false_positive_rate") if key in report}}


@main.group("rates")
def rates_group() -> None:
    """Exchange rates used to convert prices."""


@rates_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def rates_import(ctx: click.Context, file: Path) -> None:
    """Replace the rates table with FILE (our JSON format or the ECB eurofxref XML)."""
    settings: Settings = ctx.obj["settings"]
    table = parse_rates(file.read_bytes())
    path = save_rates(table, settings.data_dir)
    unrated = sorted(_workspace(ctx).catalog.currencies() - set(table.rates))
    if unrated:
        click.echo(
            f"warning: the catalog has prices in {', '.join(unrated)}, which this table has no rate for; "
            "those prices are shown in their own currency until a table with them is imported", err=True,
        )
    _echo_json({"saved": str(path), "base": table.base, "date": table.date.isoformat(), "currencies": len(table.rates),
                "catalog_currencies_without_rate": unrated})


@rates_group.command("show")
@click.pass_context
def rates_show(ctx: click.Context) -> None:
    """Print the rates table in use."""
    settings: Settings = ctx.obj["settings"]
    click.echo(load_rates(settings.data_dir).to_json())


@main.command("reindex")
@click.option("--re-embed", is_flag=True, help="Recompute every embedding with the configured embedder first.")
@click.option("--index-kind", type=click.Choice(["auto", "flat", "ivf", "hnsw"]), default=None, help="Index structure to build.")
@click.option("--progress/--no-progress", default=None)
@click.pass_context
def reindex_command(ctx: click.Context, re_embed: bool, index_kind: str | None, progress: bool | None) -> None:
    """Rebuild the vector index from the catalog (atomic)."""
    settings: Settings = ctx.obj["settings"].with_overrides(index_kind=index_kind)
    report = reindex(Workspace(settings), re_embed=re_embed, progress=sys.stderr.isatty() if progress is None else progress)
    _echo_json(report.__dict__)


if __name__ == "__main__":
    main()

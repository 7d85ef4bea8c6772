"""ImageFolderSource: ``root/<class>/<image>`` files, labelled by their folder."""

from __future__ import annotations

from collections.abc import Iterable

import jax
import numpy as np

from feedax._errors import SourceError
from feedax._source import Batch, Source
from feedax._sources._common import OBJECT, PathLike
from feedax._sources._files import as_path, find, is_dir, list_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


class _Files:
    """The image paths and labels (kept out of NNX state: they are data, not state)."""

    def __init__(self, paths: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]):
        self.paths = paths
        self.labels = labels
        self.classes = classes

    def __repr__(self) -> str:
        return f"ImageFiles({len(self.paths)} images, {len(self.classes)} classes)"


class ImageFolderSource(Source):
    """Image files in one folder per class: ``root/<class>/**/<image>``.

    Classes are the sorted sub-folder names of ``root`` (label ``k`` is the ``k``-th);
    records are the image files of each class, found recursively and sorted, class by
    class, so record indices are stable. ``read()`` returns each record's ``"path"`` (an
    ``object`` field: a ``str``) and ``"label"`` (int64), nothing is opened: decoding is
    host-stage work, done in parallel workers by :class:`feedax.DecodeImage`, which reads,
    decodes and resizes each image to one shape.

    Args:
      root: the folder holding one sub-folder per class.
      extensions: file endings counted as images (case-insensitive).
      name: a name used in error messages.

    Example:
      >>> import feedax as fx  # doctest: +SKIP
      >>> src = fx.ImageFolderSource("imagenet/train")  # doctest: +SKIP
      >>> pipe = fx.Pipeline(src, [fx.RandomFlip(rngs=rngs)], batch_size=256, shuffle=True,
      ...                    host=fx.HostMap(fx.DecodeImage(224)))  # doctest: +SKIP
      >>> src.class_to_index["n01440764"]  # doctest: +SKIP
      0
    """

    def __init__(
        self,
        root: PathLike,
        *,
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
        name: str = "ImageFolderSource",
    ):
        self.name = name
        root = as_path(root)
        if not is_dir(root, name):
            raise SourceError(f"{name}: {root!r} is not a directory. Pass the dataset's root.")
        endings = tuple(e.lower() for e in extensions)
        folders = list_dir(root, name, dirs=True)
        classes = [f.rstrip("/").rsplit("/", 1)[-1] for f in folders]
        if not classes:
            raise SourceError(
                f"{name}: {root!r} has no sub-folders. Put each class's images in "
                "root/<class name>/."
            )
        paths: list[str] = []
        labels: list[int] = []
        for label, folder in enumerate(folders):
            found = [f for f in find(folder, name) if f.lower().endswith(endings)]
            paths += found
            labels += [label] * len(found)
        if not paths:
            raise SourceError(
                f"{name}: no image files ({', '.join(endings)}) under {root!r}/<class>/. Check "
                "the root and the extensions= argument."
            )
        path_array = np.empty(len(paths), dtype=object)
        path_array[:] = paths
        self._files = _Files(path_array, np.asarray(labels, np.int64), tuple(classes))
        self.root = root

    @property
    def location(self) -> str:
        """The dataset's root folder."""
        return self.root

    @property
    def classes(self) -> list[str]:
        """The class names, in label order."""
        return list(self._files.classes)

    @property
    def class_to_index(self) -> dict[str, int]:
        """Class name -> label."""
        return {c: i for i, c in enumerate(self._files.classes)}

    def __len__(self) -> int:
        return len(self._files.paths)

    @property
    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """``"path"``: an ``object`` (``str``) field; ``"label"``: int64."""
        return {
            "path": jax.ShapeDtypeStruct((), OBJECT),
            "label": jax.ShapeDtypeStruct((), np.dtype(np.int64)),
        }

    def read(self, indices: np.ndarray) -> Batch:
        """Returns the paths and labels of the records at ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        self._check_indices(indices)
        return {"path": self._files.paths[indices], "label": self._files.labels[indices]}

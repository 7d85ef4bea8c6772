"""Registry of benchmark variants: feedax, the hand-written reference and the peers.

A variant is a module of this package exposing one function per workload (``w1``,
``w2``, ``w2folder``, ``w3``, ``w4``), each taking ``(data, config)`` and returning an endless
iterator of batches (dicts of ``jax.Array`` on the default device). A function raising
``NotImplementedError`` shows as "n/a"; a variant whose library is not importable shows as
"not installed".
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

REFERENCE = "reference"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One benchmarked configuration.

    Attributes:
        name: Id used on the command line and in the results.
        module: Module of this package holding the workload functions.
        functions: Workload -> function name in the module, for variants that name them
            otherwise (default: the workload's name).
        family: Peer family for ``--peers`` selection (``None``: always included).
        requires: Top-level package that must be importable.
        multiprocess: Whether it runs with host worker processes (``--workers``).
    """

    name: str
    module: str
    family: str | None
    requires: str
    multiprocess: bool = False
    functions: tuple[tuple[str, str], ...] = ()

    def label(self, workers: int) -> str:
        """Returns the display name, with the worker count for multiprocess variants."""
        return f"{self.name} ({workers} procs)" if self.multiprocess else self.name

    def installed(self) -> bool:
        """Whether the library this variant needs can be imported (without importing it)."""
        return importlib.util.find_spec(self.requires) is not None


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(REFERENCE, "_reference", None, "jax"),
        Variant("handwritten", "_reference", None, "jax", functions=(("w1", "w1_loop"),)),
        Variant("feedax", "_feedax", None, "feedax"),
        Variant(
            "feedax-host",
            "_feedax",
            None,
            "feedax",
            functions=(
                ("w1", "w1_host"),
                ("w2", "w2_host"),
                ("w2folder", "w2folder_host"),
                ("w4", "w4_host"),
            ),
        ),
        Variant("feedax-ray", "_feedax", None, "ray", functions=(("w4", "w4_ray"),)),
        Variant("grain", "_grain", "grain", "grain"),
        Variant("grain-mp", "_grain", "grain", "grain", multiprocess=True),
        Variant(
            "grain-bestfit", "_grain_packing", "grain", "grain", functions=(("w3", "best_fit"),)
        ),
        Variant(
            "grain-defaults",
            "_grain_packing",
            "grain",
            "grain",
            functions=(
                ("w1", "cifar_defaults"),
                ("w2", "jpeg_defaults"),
                ("w2folder", "jpeg_folder_defaults"),
                ("w3", "defaults"),
                ("w4", "text_defaults"),
            ),
        ),
        Variant("torch", "_torch", "torch", "torch"),
        Variant("torch-mp", "_torch", "torch", "torch", multiprocess=True),
        Variant("tfdata", "_tfdata", "tfdata", "tensorflow"),
    )
}
PEER_FAMILIES: tuple[str, ...] = ("grain", "torch", "tfdata")


def get_variant(name: str) -> Variant:
    """Returns the variant called ``name``.

    Raises:
        ValueError: If no variant has that name.
    """
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}") from None


def select(
    peers: tuple[str, ...] | None = None, variants: tuple[str, ...] | None = None
) -> list[Variant]:
    """Returns the variants to run, in registry order.

    Args:
        peers: Peer families to include (``None``: all). The reference and feedax are
            always included unless ``variants`` is given.
        variants: Explicit variant names; overrides ``peers``.

    Raises:
        ValueError: On an unknown peer family or variant name.
    """
    if variants is not None:
        wanted = {get_variant(v).name for v in variants}
        return [v for v in VARIANTS.values() if v.name in wanted]
    families = set(PEER_FAMILIES if peers is None else peers)
    unknown = families - set(PEER_FAMILIES)
    if unknown:
        raise ValueError(f"unknown peer(s) {sorted(unknown)}; choose from {PEER_FAMILIES}")
    return [v for v in VARIANTS.values() if v.family is None or v.family in families]


BatchFn = Callable[[Any, Any], Iterator[dict[str, Any]]]


def load_function(variant: str, workload: str) -> BatchFn:
    """Imports the variant's module and returns its function for ``workload``.

    Raises:
        ImportError: If the variant's library is not installed.
        NotImplementedError: If the module has no function for the workload.
    """
    chosen = get_variant(variant)
    module = importlib.import_module(f"benchmarks.{chosen.module}")
    fn = getattr(module, dict(chosen.functions).get(workload, workload), None)
    if chosen.functions and workload not in dict(chosen.functions):
        fn = None
    if fn is None:
        raise NotImplementedError(f"{variant} has no {workload} function")
    return fn

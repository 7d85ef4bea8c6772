"""A pipeline's state as two small files, written once: values (``.npz``) and an index (JSON).

The state is global (every process holds the same cursor, keys and statistics), so one
process writes it and a run restores it under any process count. The index records each
entry's path, dtype, shape and PRNG implementation, and a digest checked on load.
"""

from __future__ import annotations

import io
import json
from typing import Any

import jax
import numpy as np
from etils import epath
from flax import nnx

from feedax._digest import digest
from feedax._errors import CheckpointError, StateMismatchError

VALUES = "pipeline_state.npz"
INDEX = "pipeline_state.json"
FORMAT = 1


def snapshot(module: Any) -> dict[str, np.ndarray | str]:
    """Each state entry's value, on the host: ``"path/to/entry"`` -> array.

    PRNG keys are stored as their key data, with the implementation under ``"path#impl"``.
    """
    out: dict[str, Any] = {}
    for path, variable in nnx.to_flat_state(nnx.state(module)):
        key = "/".join(str(p) for p in path)
        value = variable.get_value() if isinstance(variable, nnx.Variable) else variable
        if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            out[f"{key}#impl"] = str(jax.random.key_impl(value))
            value = jax.random.key_data(value)
        out[key] = _local(value)
    return out


def _local(value: Any) -> np.ndarray:
    """A host copy; a replicated multi-host array gives this process's replica."""
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        value = value.addressable_data(0)
    return np.asarray(jax.device_get(value))


def write_values(directory: Any, values: dict[str, Any]) -> None:
    """Writes a :func:`snapshot` into ``directory`` (any path ``etils.epath`` opens)."""
    directory = epath.Path(directory)
    arrays = {k: v for k, v in values.items() if not k.endswith("#impl")}
    buffer = io.BytesIO()
    np.savez(buffer, **{_npz_name(i): v for i, v in enumerate(arrays.values())})
    index = {
        "format": FORMAT,
        "entries": [
            {
                "path": k,
                "dtype": str(v.dtype),
                "shape": list(v.shape),
                "impl": values.get(f"{k}#impl"),
            }
            for k, v in arrays.items()
        ],
        "blake2b": _digest(arrays),
    }
    (directory / VALUES).write_bytes(buffer.getvalue())
    (directory / INDEX).write_text(json.dumps(index, indent=1))


def read(directory: Any, module: Any, what: str) -> None:
    """Loads the state in ``directory`` into ``module`` (in place), after checking it.

    Raises ``StateMismatchError`` when the saved state has other entries, shapes or
    dtypes than the module's, or another pipeline's signature; ``CheckpointError`` when
    the files are missing or damaged. Nothing is loaded unless all checks pass.
    """
    directory = epath.Path(directory)
    if not (directory / INDEX).exists() or not (directory / VALUES).exists():
        raise CheckpointError(
            f"{what}: no pipeline state in {str(directory)!r} (expected {INDEX} and {VALUES}). "
            "Restore from the directory a feedax Save wrote."
        )
    index = json.loads((directory / INDEX).read_text())
    with np.load(io.BytesIO((directory / VALUES).read_bytes())) as npz:
        saved = {e["path"]: npz[_npz_name(i)] for i, e in enumerate(index["entries"])}
    if _digest(saved) != index["blake2b"]:
        raise CheckpointError(
            f"{what}: the pipeline state in {str(directory)!r} is damaged (digest mismatch); "
            "nothing was loaded. Restore an earlier checkpoint."
        )
    impls = {e["path"]: e["impl"] for e in index["entries"]}
    flat = nnx.to_flat_state(nnx.state(module))
    mine = {"/".join(str(p) for p in path): variable for path, variable in flat}
    if mine.keys() != saved.keys():
        raise StateMismatchError(
            f"{what}: the checkpoint was saved by a different pipeline: only in the checkpoint "
            f"{sorted(saved.keys() - mine.keys())[:6]}, only in this pipeline "
            f"{sorted(mine.keys() - saved.keys())[:6]} (e.g. other operators or on_error). "
            "Restore it into a pipeline built like the one that saved it."
        )
    updates = []
    for path, variable in flat:
        key = "/".join(str(p) for p in path)
        value, impl = saved[key], impls[key]
        current = variable.get_value() if isinstance(variable, nnx.Variable) else variable
        want = jax.random.key_data(current) if impl else current
        if tuple(value.shape) != tuple(np.shape(want)) or value.dtype != np.asarray(want).dtype:
            raise StateMismatchError(
                f"{what}: the checkpoint's {key!r} is {value.dtype}{list(value.shape)}, this "
                f"pipeline's is {np.asarray(want).dtype}{list(np.shape(want))}. Restore it into "
                "a pipeline built like the one that saved it."
            )
        if impl:
            restored = jax.random.wrap_key_data(value, impl=impl)
        elif isinstance(current, jax.Array):  # keep device arrays on the device
            restored = jax.numpy.asarray(value)
        else:
            restored = value
        updates.append((path, variable.replace(restored)))
    nnx.update(module, nnx.from_flat_state(updates))  # the signature check raises here


def _npz_name(i: int) -> str:
    return f"v{i}"


def _digest(arrays: dict[str, np.ndarray]) -> str | None:
    return digest(dict(sorted(arrays.items())))


def background_write(module: Any, directory: Any) -> Any:
    """Orbax v1's save: the state taken now, written (by process 0) when awaited."""
    values = snapshot(module)

    async def write() -> None:
        path = await directory.await_creation()
        if jax.process_index() == 0:
            write_values(path, values)

    return write()


def background_read(module: Any, directory: Any) -> Any:
    """Orbax v1's load: the state read into ``module`` when awaited."""

    async def load() -> None:
        read(directory, module, "Pipeline.load")

    return load()

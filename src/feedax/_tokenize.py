"""Tokenizing a text source once into a TokenSource: the corpus a packing pipeline reads.

Packing plans rows from the sequences' lengths, which a tokenizer only gives by
tokenizing; so texts are tokenized once, in batches (the Hugging Face ``tokenizers``
library encodes a batch in parallel, in Rust), streamed to ``tokens.npy`` +
``offsets.npy``, and cached: a second call with the same source and tokenizer reuses
the files. Record ``i`` of the result is record ``i`` of the text source.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from feedax._errors import SourceError
from feedax._sources._common import PathLike
from feedax._sources.tokens import TokenSource, write_tokens

FINGERPRINT = "fingerprint.json"


def tokenize(
    source: Any,
    tokenizer: Any,
    directory: PathLike,
    *,
    field: str = "text",
    batch_size: int = 1024,
    bos_id: int | None = None,
    eos_id: int | None = None,
    progress: bool = True,
) -> TokenSource:
    """Tokenizes every record of ``source`` into ``directory`` and returns the token source.

    Args:
      source: a random-access source with a text field (``TextSource``, ``JsonlSource``,
        ``ParquetSource``, ``HFSource``, ``ArraySource`` of strings...).
      tokenizer: a ``tokenizers.Tokenizer`` (its ``encode_batch`` is used), or any
        callable ``list[str] -> list[list[int]]``: a sentencepiece processor's ``encode``
        (``pip install 'feedax[text]'``), tiktoken's ``encode_batch``, your own.
      directory: where ``tokens.npy``, ``offsets.npy`` and a fingerprint are written; if it
        already holds this source tokenized by this tokenizer, nothing is redone.
      field: the text field.
      batch_size: texts encoded at once.
      bos_id: a token put before every sequence (None: none).
      eos_id: a token put after every sequence (None: none).
      progress: show a progress bar.

    Example:
      >>> import tempfile, numpy as np, feedax as fx
      >>> texts = fx.ArraySource({"text": np.array(["a bb", "c"], dtype=object)})
      >>> words = lambda batch: [[len(w) for w in t.split()] for t in batch]
      >>> fx.tokenize(texts, words, tempfile.mkdtemp(), eos_id=9, progress=False).sequence(0)
      array([1, 2, 9], dtype=int32)
    """
    encode = _encoder(tokenizer)
    path = os.fspath(directory)
    key = _fingerprint(source, tokenizer, encode, field, bos_id, eos_id)
    marker = os.path.join(path, FINGERPRINT)
    if os.path.isfile(marker):
        with open(marker) as file:
            if json.load(file).get("key") == key:
                return TokenSource.from_directory(path, name=f"{source.name} tokens")
    vocab = getattr(tokenizer, "get_vocab_size", lambda: 1 << 31)()
    dtype = np.uint16 if vocab <= 1 << 16 else np.int32
    sequences = _encoded(source, encode, field, batch_size, bos_id, eos_id, progress)
    write_tokens(path, sequences, dtype=dtype)
    with open(marker, "w") as file:
        json.dump({"key": key, "source": source.name, "records": len(source)}, file)
    return TokenSource.from_directory(path, name=f"{source.name} tokens")


def _encoder(tokenizer: Any) -> Callable[[list[str]], Sequence[Sequence[int]]]:
    if hasattr(tokenizer, "encode_batch"):
        return lambda texts: [e.ids for e in tokenizer.encode_batch(texts)]
    if callable(tokenizer):
        return tokenizer
    raise SourceError(
        f"tokenize: tokenizer must be a tokenizers.Tokenizer or a callable list[str] -> "
        f"list[list[int]], got {type(tokenizer).__name__}."
    )


def _encoded(
    source: Any,
    encode: Callable[[list[str]], Sequence[Sequence[int]]],
    field: str,
    batch_size: int,
    bos_id: int | None,
    eos_id: int | None,
    progress: bool,
) -> Iterator[np.ndarray]:
    from tqdm.auto import tqdm

    n = len(source)
    bar = tqdm(total=n, desc=f"tokenizing {source.name}", unit="rec", disable=not progress)
    head = [] if bos_id is None else [bos_id]
    tail = [] if eos_id is None else [eos_id]
    try:
        for lo in range(0, n, batch_size):
            indices = np.arange(lo, min(lo + batch_size, n))
            texts = source.read(indices)[field]
            for i, text in zip(indices, texts, strict=True):
                if not isinstance(text, str):
                    raise SourceError(
                        f"{source.name}: record index {int(i)} has a {type(text).__name__} in "
                        f"field {field!r}, not text. Point field= at the text field."
                    )
            for ids in encode(list(texts)):
                yield np.asarray([*head, *ids, *tail], np.int64)
            bar.update(len(indices))
    finally:
        bar.close()


PROBE = "The quick brown fox jumps over the lazy dog: def f(x): return x ** 2  # 0123456789"


def _fingerprint(
    source: Any, tokenizer: Any, encode: Callable[[list[str]], Any], field: str, bos: Any, eos: Any
) -> str:
    """What the tokens depend on: the source (its files' sizes and times), the tokenizer.

    A tokenizer is known by its serialised form where it has one (``to_str``) and, for any
    tokenizer, by how it encodes a probe text, so another model behind the same function
    name does not reuse the cache.
    """
    files = [(f, os.path.getsize(f), os.path.getmtime(f)) for f in getattr(source, "files", [])]
    if hasattr(tokenizer, "to_str"):
        recipe = tokenizer.to_str()
    else:
        recipe = getattr(tokenizer, "__qualname__", repr(tokenizer))
    try:
        probe: Any = [list(map(int, ids)) for ids in encode([PROBE])]
    except Exception:  # a tokenizer for one kind of text only: its name must then do
        probe = None
    text = repr(
        (type(source).__qualname__, source.name, len(source), files, recipe, probe, field, bos, eos)
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

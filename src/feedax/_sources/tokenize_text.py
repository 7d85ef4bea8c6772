"""TokenizeText: a host function that turns a record's text into token ids."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from feedax._errors import SourceError
from feedax._sources._common import require


class TokenizeText:
    """Host function: the token ids of a record's text, with a Hugging Face tokenizer.

    For :class:`feedax.HostMap` (``fx.HostMap(fx.TokenizeText("tokenizer.json"))`` feeding
    ``Pack(field="tokens")``) and for ``feedax.prepare.run``. The output is ``out_field``
    (a 1-D int32 array, ragged) plus the record's fields that are not text. Given a path,
    the tokenizer is loaded once per process on first use, so the instance pickles small.
    For a whole corpus that fits one machine, :func:`feedax.tokenize` (batched) is faster.

    Args:
      tokenizer: a ``tokenizers.Tokenizer`` or the path of its ``tokenizer.json``.
      field: the text field.
      out_field: the output field of the token ids.
      bos_id: a token put before the ids (None: none).
      eos_id: a token put after the ids (None: none).

    Example:
      >>> import numpy as np, feedax as fx
      >>> from tokenizers import Tokenizer, models, pre_tokenizers
      >>> vocab = {"[UNK]": 0, "a": 1, "b": 2}
      >>> tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
      >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
      >>> fx.TokenizeText(tok, eos_id=0)({"text": "a b a"}, None)["tokens"].tolist()
      [1, 2, 1, 0]
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        field: str = "text",
        out_field: str = "tokens",
        bos_id: int | None = None,
        eos_id: int | None = None,
    ):
        if isinstance(tokenizer, str | os.PathLike):
            if not os.path.isfile(tokenizer):
                raise SourceError(
                    f"TokenizeText: no tokenizer file at {os.fspath(tokenizer)!r}. Give the "
                    "path of a tokenizer.json (tokenizer.save(path)) or a Tokenizer."
                )
            self.path: str | None = os.fspath(tokenizer)
            self._tokenizer = None
        elif hasattr(tokenizer, "encode"):
            self.path, self._tokenizer = None, tokenizer
        else:
            raise SourceError(
                f"TokenizeText: expected a tokenizers.Tokenizer or a tokenizer.json path, got "
                f"{type(tokenizer).__name__}."
            )
        self.field, self.out_field, self.bos_id, self.eos_id = field, out_field, bos_id, eos_id

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_tokenizer"] = None  # loaded again where it runs
        return state

    def _loaded(self) -> Any:
        if self._tokenizer is None:
            (tokenizers,) = require(["tokenizers"], extra="text", user="TokenizeText")
            self._tokenizer = tokenizers.Tokenizer.from_file(self.path)
        return self._tokenizer

    def __call__(self, record: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """The record's token ids in ``out_field``, its other non-text fields as they are."""
        if self.field not in record:
            raise SourceError(
                f"TokenizeText: the record has no field {self.field!r}; its fields are "
                f"{sorted(record)}. Pass field=<the text field>."
            )
        text = record[self.field]
        text = text.item() if isinstance(text, np.ndarray) else text
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        ids = list(self._loaded().encode(str(text)).ids)
        ids = (
            [self.bos_id] * (self.bos_id is not None)
            + ids
            + [self.eos_id] * (self.eos_id is not None)
        )
        out = {
            k: v
            for k, v in record.items()
            if k != self.field and np.asarray(v).dtype != object and not isinstance(v, str | bytes)
        }
        out[self.out_field] = np.asarray(ids, np.int32)
        return out

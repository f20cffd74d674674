from typing_extensions import Buffer

FIELDS: int
OK: int
SHORT: int
HEAD: int
MISMATCH: int
MAX_HEAD: int

def read_chunks(
    fd: int,
    items: Buffer,
    head_len: int,
    variants: int,
    heads: Buffer,
    want: Buffer,
    check: Buffer,
    out: Buffer,
    scratch: Buffer,
    stream: bool = ...,
    /,
) -> tuple[int, int, int]: ...
def read_each(
    fd: int,
    items: Buffer,
    head_len: int,
    variants: int,
    heads: Buffer,
    want: Buffer,
    check: Buffer,
    outs: list[Buffer] | tuple[Buffer, ...],
    /,
) -> tuple[int, int, int]: ...
def hash_rows(item: Buffer, buffer: Buffer, /) -> int: ...

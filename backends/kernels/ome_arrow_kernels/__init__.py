"""Optional C kernels of ome-arrow-core (``pip install "ome-arrow-core[fast]"``): not a plugin, nothing to register.

:func:`read_chunks` reads whole chunks of a file (each page into a scratch buffer), checks each (its page head
against the usual ones, XXH3-64 of its value against the stored digest) and copies its rows into their places in
an output, with the GIL released: the box plans
of ``ome_arrow_core.typed_chunk`` use it when it is installed (``OME_ARROW_KERNELS=0`` turns it off). An item is
:data:`FIELDS` int64: its page's file offset, its value's bytes, where its first row lands in the output (bytes), a
row's bytes, four row counts (outermost first) and their four strides in the output (bytes), its head kind (which
``variants`` heads of ``heads`` it may start with). :func:`read_each` reads each item's value straight into an
output of its own (a list, one per item: the chunks of a tile stream), checked the same way. :func:`hash_rows` is XXH3-64 of one item's rows of a buffer.
"""

from ._kernels import FIELDS, HEAD, MAX_HEAD, MISMATCH, OK, SHORT, hash_rows, read_chunks, read_each

__all__ = ["read_chunks", "read_each", "hash_rows", "FIELDS", "OK", "SHORT", "HEAD", "MISMATCH", "MAX_HEAD"]

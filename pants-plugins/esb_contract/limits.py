"""How many layers an image may have, and how the backend shares them out."""

from typing import Sequence, Tuple

# What Docker's overlay2 driver, and so every common engine, stacks in one image: `assemble`
# refuses an image with more.
MAX_LAYERS = 127
# What the base (2 layers for a Debian base; an upstream base may bring up to 24), uv, the
# venv's own files and the service's sources may take at most.
RESERVED_LAYERS = 27
# What the locked distributions of a service may take, one layer each (or grouped beyond it).
MAX_DISTRIBUTION_LAYERS = MAX_LAYERS - RESERVED_LAYERS
# A layer costs a node that pulls the image requests and an unpacking of its own, whatever its
# size; below this many compressed bytes, that costs more than sharing the layer with the node's
# other images saves. A service's venv layers (its distributions' and the venv's own files) this
# small are merged into one layer of the image.
MERGED_LAYER_BELOW_BYTES = 1_000_000


def layers_to_merge(sizes: Sequence[int]) -> Tuple[int, ...]:
    """Of a service's venv layers' blob sizes (bottom first), the indices of those the image lists
    merged into one: the layers below `MERGED_LAYER_BELOW_BYTES`, when there are several."""
    small = tuple(index for index, size in enumerate(sizes) if size < MERGED_LAYER_BELOW_BYTES)
    return small if len(small) > 1 else ()

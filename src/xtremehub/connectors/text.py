"""Text and CSV connectors.

Example:
    >>> from xtremehub.connectors.text import CSV, partition_num_chunks
    >>> CSV.name
    'csv'
"""

from __future__ import annotations

from xtremehub.connectors.formats.text.text import (
    CSV,
    CSVSlice,
    Text,
    TextSlice,
    partition_chunk_size,
    partition_num_chunks,
)

__all__ = ["CSV", "CSVSlice", "Text", "TextSlice", "partition_chunk_size", "partition_num_chunks"]

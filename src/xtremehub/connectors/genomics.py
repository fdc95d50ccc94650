"""Genomics connectors, Dataplug-style names.

Example:
    >>> from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches
    >>> FASTQGZip.name
    'fastq_gzip'
"""

from __future__ import annotations

from xtremehub.connectors.formats.genomics.fastq_gzip import (
    FASTQGZip,
    FASTQGZipSlice,
    partition_bytes_per_batch,
    partition_reads_batches,
    partition_reads_per_batch,
)

__all__ = [
    "FASTQGZip",
    "FASTQGZipSlice",
    "partition_bytes_per_batch",
    "partition_reads_batches",
    "partition_reads_per_batch",
]

"""Genomics connectors, Dataplug-style names.

Example:
    >>> from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches
    >>> FASTQGZip.name
    'fastq_gzip'
"""

from __future__ import annotations

from xtremehub.connectors.formats.genomics.fasta import (
    FASTA,
    FaiEntry,
    FASTASlice,
    partition_bases,
    partition_sequences,
    read_fai,
)
from xtremehub.connectors.formats.genomics.fastq_gzip import (
    FASTQGZip,
    FASTQGZipSlice,
    partition_bytes_per_batch,
    partition_reads_batches,
    partition_reads_per_batch,
)
from xtremehub.connectors.formats.genomics.vcf import VCF, VCFSlice, partition_by_region, partition_records

__all__ = [
    "FASTA",
    "VCF",
    "FASTASlice",
    "FASTQGZip",
    "FASTQGZipSlice",
    "FaiEntry",
    "VCFSlice",
    "partition_bases",
    "partition_by_region",
    "partition_bytes_per_batch",
    "partition_reads_batches",
    "partition_reads_per_batch",
    "partition_records",
    "partition_sequences",
    "read_fai",
]

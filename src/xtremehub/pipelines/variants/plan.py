"""What every task of a run needs: inputs, regions, where the shuffle goes, and the store settings.

Regions come from the reference's FASTA index (:func:`~xtremehub.connectors.genomics.partition_bases`):
about ``region_size`` bases each, long sequences split, short ones sharing a region.

Example:
    >>> from xtremehub.pipelines.variants.plan import Region
    >>> r = Region(0, (("chr1", 0, 1000), ("chr2", 0, 50)))
    >>> r.spec, r.bases
    ('chr1:1-1000,chr2:1-50', 1050)
    >>> Region(1, (("HLA-A*01:01", 0, 500),)).regions_file()
    'HLA-A*01:01\\t1\\t500\\n'

"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.errors import ConfigError
from xtremehub.pipelines.variants.config import VariantsConfig
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

__all__ = ["Region", "RegionLookup", "RunPlan", "local_copy"]


@dataclass(frozen=True)
class Region:
    """One call task's share of the genome: pieces ``(sequence, start, end)``, 0-based, half-open."""

    index: int
    pieces: tuple[tuple[str, int, int], ...]

    @property
    def spec(self) -> str:
        """The pieces as a samtools-style region list (1-based, inclusive), for messages."""
        return ",".join(f"{name}:{start + 1}-{end}" for name, start, end in self.pieces)

    def regions_file(self) -> str:
        """The pieces as a bcftools regions file (``CHROM BEG END``, 1-based, inclusive): any
        sequence name works there, colons and commas included."""
        return "".join(f"{name}\t{start + 1}\t{end}\n" for name, start, end in self.pieces)

    @property
    def bases(self) -> int:
        return sum(end - start for _, start, end in self.pieces)


class RegionLookup:
    """Which regions an alignment ``[start, end)`` on a sequence overlaps (every one of them).

    >>> lookup = RegionLookup([Region(0, (("a", 0, 10),)), Region(1, (("a", 10, 20), ("b", 0, 5)))])
    >>> lookup.overlapping("a", 8, 12), lookup.overlapping("a", 10, 11), lookup.overlapping("b", 4, 9)
    ([0, 1], [1], [1])
    """

    def __init__(self, regions: list[Region] | tuple[Region, ...]) -> None:
        by_seq: dict[str, list[tuple[int, int, int]]] = {}
        for region in regions:
            for name, start, end in region.pieces:
                by_seq.setdefault(name, []).append((start, end, region.index))
        self._starts = {name: [p[0] for p in sorted(v)] for name, v in by_seq.items()}
        self._pieces = {name: sorted(v) for name, v in by_seq.items()}

    def overlapping(self, name: str, start: int, end: int) -> list[int]:
        pieces = self._pieces.get(name)
        if not pieces:
            return []
        j = bisect.bisect_left(self._starts[name], end) - 1
        found = []
        while j >= 0 and pieces[j][1] > start:
            found.append(pieces[j][2])
            j -= 1
        return sorted(set(found))


@dataclass(frozen=True)
class RunPlan:
    """Everything a map or call task needs (pickled to workers without S3 credentials)."""

    reads_urls: tuple[str, ...]
    reference_url: str
    work_url: str
    config: VariantsConfig
    contigs: tuple[tuple[str, int], ...]
    regions: tuple[Region, ...]
    #: the run's store settings; pickled to workers without S3 credentials (see StoreAccess)
    access: StoreAccess = field(default=PROCESS_DEFAULTS)

    @property
    def mmi_url(self) -> str:
        return f"{self.work_url}/reference.mmi"

    @property
    def paired(self) -> bool:
        return len(self.reads_urls) == 2

    def part_url(self, region: int, batch: int) -> str:
        """The shuffle object of one (read batch x region): a BAM in read order."""
        return f"{self.work_url}/parts/r{region:06d}/b{batch:06d}.bam"

    def settings_for(self, url: str) -> Settings:
        """The settings to read or write ``url`` of this run with, in the calling process."""
        return self.access.settings_for(url)


def local_copy(url: str, settings: Settings, suffix: str) -> Path:
    """A local copy of ``url`` (decompressed when gzip), cached per process host by URL and etag."""
    info = storage.head(url, settings=settings)
    key = hashlib.sha256(f"{url}\0{info.etag}\0{info.size}".encode()).hexdigest()[:20]
    root = Path(tempfile.gettempdir()) / f"xhub-variants-{os.getuid()}"  # this user's, mode 0700
    root.mkdir(mode=0o700, exist_ok=True)
    if root.stat().st_uid != os.getuid() or root.stat().st_mode & 0o077:
        raise ConfigError(f"{root}: the reference cache must be this user's own directory with mode 0700")
    folder = root / key
    target = folder / f"data{suffix}"
    if target.exists():
        return target
    folder.mkdir(mode=0o700, exist_ok=True)
    data = storage.get(url, settings=settings)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=target.name)  # unique per thread too
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, target)
    return target

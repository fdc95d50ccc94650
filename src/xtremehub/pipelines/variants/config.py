"""The frozen settings of a variant-calling run: batching, regions, mapping and calling parameters.

Example:
    >>> from xtremehub.pipelines.variants import VariantsConfig
    >>> VariantsConfig().mpileup_args
    ('-a', 'FORMAT/AD,FORMAT/DP')
    >>> VariantsConfig(region_size=0)
    Traceback (most recent call last):
    ...
    xtremehub.errors.ConfigError: region_size must be >= 1 base, not 0
"""

from __future__ import annotations

from dataclasses import dataclass

from xtremehub.errors import ConfigError

__all__ = ["VariantsConfig"]


@dataclass(frozen=True)
class VariantsConfig:
    """How reads are cut, mapped, regrouped and called.

    Attributes:
        read_batches: read batches (map tasks); paired files are cut at the same read numbers.
        region_size: bases per genome region (call tasks); regions come from the reference's
            FASTA index, small sequences share a region.
        preset: the minimap2 preset (``"sr"``: short reads).
        max_insert: a pair is *proper* (flag 0x2; bcftools skips improper pairs by default) when
            both mates map to one sequence on opposite strands, facing each other, within this span.
        mpileup_args: extra ``bcftools mpileup`` arguments (``-f`` and ``-r`` are set by the pipeline).
        call_args: ``bcftools call`` arguments.
        sample: the sample name (read group ``SM``) in the VCF.
        keep_work: keep the shuffle's BAM parts and the index under the work prefix.
    """

    read_batches: int = 8
    region_size: int = 1_000_000
    preset: str = "sr"
    max_insert: int = 1000
    mpileup_args: tuple[str, ...] = ("-a", "FORMAT/AD,FORMAT/DP")
    call_args: tuple[str, ...] = ("-m", "-v")
    sample: str = "sample"
    keep_work: bool = False

    def __post_init__(self) -> None:
        if self.read_batches < 1:
            raise ConfigError(f"read_batches must be >= 1, not {self.read_batches}")
        if self.region_size < 1:
            raise ConfigError(f"region_size must be >= 1 base, not {self.region_size}")
        if self.max_insert < 1:
            raise ConfigError(f"max_insert must be >= 1, not {self.max_insert}")
        reserved = {"-f", "--fasta-ref", "-r", "--regions", "-R", "--regions-file", "-o", "--output"}
        if reserved & set(self.mpileup_args) or {"-o", "--output"} & set(self.call_args):
            raise ConfigError("mpileup_args/call_args must not set the reference, regions or output")

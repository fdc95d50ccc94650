"""A small seeded read simulator with a truth set: planted SNPs and indels, paired-end fragments.

A diploid genome is made from a reference by planting SNPs and short indels, heterozygous (on
one haplotype) or homozygous (on both). Fragments are drawn uniformly from either haplotype
(normal fragment lengths), read from both ends (paired-end) or one end (single-end), on a
random strand. Each base gets a Phred quality that rises in error rate along the read, and a
substitution error with exactly the probability its quality says; a few reads get one inserted
or deleted base. Indels are planted only where they cannot be shifted left or right (so the
truth has one spelling), and no two variants lie within 20 bases.

Example:
    >>> import tempfile
    >>> from xtremehub.pipelines.variants.simulate import SimConfig, random_reference, simulate_run
    >>> d = tempfile.mkdtemp()
    >>> ref = random_reference(d + "/ref.fa", {"chr1": 20_000}, seed=1)
    >>> run = simulate_run(ref, d, SimConfig(coverage=5, seed=2))
    >>> run.num_fragments, len(run.reads_urls), len(run.variants) > 5
    (500, 2, True)
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from xtremehub import storage
from xtremehub.errors import ConfigError

__all__ = [
    "PlantedVariant",
    "SimConfig",
    "SimulatedRun",
    "plant_variants",
    "random_reference",
    "read_fasta",
    "simulate_run",
    "truth_vcf",
    "write_fasta",
]

_BASES = np.frombuffer(b"ACGTN", dtype=np.uint8)
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i
    _CODE[ord(chr(_b).lower())] = _i
_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)
_MIN_GAP = 20  # bases between planted variants


@dataclass(frozen=True)
class SimConfig:
    """What to simulate.

    Attributes:
        coverage: mean depth over the genome (both mates counted).
        read_length: bases per read.
        paired: two files (``_1``/``_2``) of mates, or one file of single reads.
        fragment_mean, fragment_sd: fragment (insert) length distribution.
        error_rate: mean substitution error rate (rises threefold from the first to the last base).
        indel_error_rate: chance that a read carries one inserted or deleted base.
        snp_rate, indel_rate: planted variants per reference base.
        hom_fraction: share of planted variants that are homozygous.
        max_indel: longest planted insertion or deletion.
        reads_per_member: reads per gzip member of the FASTQ.gz files.
        seed: everything is reproducible from it.
    """

    coverage: float = 30.0
    read_length: int = 100
    paired: bool = True
    fragment_mean: int = 300
    fragment_sd: int = 30
    error_rate: float = 0.002
    indel_error_rate: float = 0.01
    snp_rate: float = 1 / 1000
    indel_rate: float = 1 / 5000
    hom_fraction: float = 1 / 3
    max_indel: int = 5
    reads_per_member: int = 50_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.coverage <= 0 or self.read_length < 20:
            raise ConfigError("coverage must be > 0 and read_length >= 20")
        if self.paired and self.fragment_mean < self.read_length:
            raise ConfigError("fragment_mean must be at least read_length")


@dataclass(frozen=True)
class PlantedVariant:
    """A truth-set record: 1-based ``pos``, VCF alleles, genotype ``"0/1"`` or ``"1/1"``."""

    chrom: str
    pos: int
    ref: str
    alt: str
    genotype: str
    haplotype: int = 0  # the haplotype carrying a heterozygous variant

    @property
    def is_snp(self) -> bool:
        return len(self.ref) == len(self.alt) == 1


@dataclass(frozen=True)
class SimulatedRun:
    """Where the simulation wrote its files, and what it planted."""

    reference_url: str
    reads_urls: tuple[str, ...]
    truth_url: str
    variants: tuple[PlantedVariant, ...]
    num_fragments: int


def read_fasta(url: str) -> dict[str, str]:
    """Sequences of a (small) plain FASTA, by name (first word of the header)."""
    seqs: dict[str, list[str]] = {}
    name = ""
    for line in storage.get(url).decode().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            seqs[name] = []
        elif name:
            seqs[name].append(line.strip())
    return {k: "".join(v) for k, v in seqs.items()}


def write_fasta(url: str, sequences: dict[str, str], width: int = 60) -> str:
    """Write sequences as FASTA with ``width`` bases a line; returns ``url``."""
    parts = []
    for name, seq in sequences.items():
        parts.append(f">{name}\n")
        parts.extend(seq[i : i + width] + "\n" for i in range(0, len(seq), width))
    storage.put(url, "".join(parts).encode())
    return url


def random_reference(url: str, lengths: dict[str, int], seed: int = 0) -> str:
    """A random genome (uniform bases) of the given sequence lengths, written to ``url``."""
    rng = np.random.default_rng(seed)
    seqs = {name: _BASES[rng.integers(0, 4, n)].tobytes().decode() for name, n in lengths.items()}
    return write_fasta(url, seqs)


def plant_variants(
    sequences: dict[str, str], config: SimConfig, at: Sequence[tuple[str, int]] = ()
) -> list[PlantedVariant]:
    """Choose SNPs and indels at random (plus one at each ``(chrom, 1-based pos)`` of ``at``)."""
    rng = np.random.default_rng(config.seed)
    out: list[PlantedVariant] = []
    forced: dict[str, list[int]] = {}
    for chrom, pos in at:
        forced.setdefault(chrom, []).append(pos - 1)
    for chrom, seq in sequences.items():
        n = len(seq)
        count = rng.binomial(n, config.snp_rate + config.indel_rate)
        must = set(forced.get(chrom, []))
        spots = {int(p) for p in rng.integers(_MIN_GAP, max(_MIN_GAP + 1, n - _MIN_GAP), count)}
        spots = {p for p in spots if all(abs(p - f) >= _MIN_GAP for f in must)} | must
        last = -_MIN_GAP
        for p in sorted(spots):
            if (p - last < _MIN_GAP and p not in must) or p + config.max_indel + 2 >= n or p < 1:
                continue
            indel = rng.random() < config.indel_rate / (config.snp_rate + config.indel_rate)
            variant = _indel(chrom, seq, p, rng, config) if indel else None
            if variant is None:
                variant = _snp(chrom, seq, p, rng)
            if variant is None:
                continue
            hom = rng.random() < config.hom_fraction
            out.append(
                PlantedVariant(
                    variant[0], variant[1], variant[2], variant[3], "1/1" if hom else "0/1", int(rng.integers(0, 2))
                )
            )
            last = p
    return out


def _snp(chrom: str, seq: str, p: int, rng: np.random.Generator) -> tuple[str, int, str, str] | None:
    ref = seq[p].upper()
    if ref not in "ACGT":
        return None
    alt = "ACGT"[("ACGT".index(ref) + int(rng.integers(1, 4))) % 4]
    return chrom, p + 1, ref, alt


def _indel(
    chrom: str, seq: str, p: int, rng: np.random.Generator, config: SimConfig
) -> tuple[str, int, str, str] | None:
    """An insertion or deletion after base ``p`` that cannot be shifted (one spelling only)."""
    k = int(rng.integers(1, config.max_indel + 1))
    anchor = seq[p].upper()
    window = seq[p : p + k + 2].upper()
    if "N" in window or anchor not in "ACGT":
        return None
    if rng.random() < 0.5:  # deletion of seq[p+1 : p+1+k]
        deleted = seq[p + 1 : p + 1 + k].upper()
        if deleted[-1] == anchor or deleted[0] == seq[p + 1 + k].upper():
            return None
        return chrom, p + 1, anchor + deleted, anchor
    inserted = "".join("ACGT"[int(i)] for i in rng.integers(0, 4, k))
    if inserted[-1] == anchor or inserted[0] == seq[p + 1].upper():
        return None
    return chrom, p + 1, anchor, anchor + inserted


def _haplotype(seq: str, variants: list[PlantedVariant], hap: int) -> np.ndarray:
    pieces, pos = [], 0
    for v in variants:
        if v.genotype == "0/1" and v.haplotype != hap:
            continue
        start = v.pos - 1
        pieces.append(seq[pos:start])
        pieces.append(v.alt)
        pos = start + len(v.ref)
    pieces.append(seq[pos:])
    return _CODE[np.frombuffer("".join(pieces).encode(), dtype=np.uint8)]


def _reads(
    hap: np.ndarray, starts: np.ndarray, reverse: np.ndarray, config: SimConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Reads of ``read_length`` at ``starts`` (reverse-complemented where ``reverse``), with errors."""
    n, length = len(starts), config.read_length
    idx = starts[:, None] + np.arange(length)[None, :]
    codes = hap[np.minimum(idx, len(hap) - 1)]
    codes[reverse] = _COMPLEMENT[codes[reverse][:, ::-1]]
    # Phred qualities: error rate rising from 0.5x to 1.5x the mean along the read, +-3 noise
    rate = config.error_rate * (0.5 + np.arange(length) / max(length - 1, 1))
    phred = np.rint(-10 * np.log10(rate))[None, :] + rng.integers(-3, 4, (n, length))
    phred = np.clip(phred, 2, 41)
    errors = rng.random((n, length)) < 10.0 ** (-phred / 10.0)
    shift = rng.integers(1, 4, (n, length)).astype(np.uint8)
    codes = np.where(errors & (codes < 4), (codes + shift) % 4, codes).astype(np.uint8)
    for row in np.flatnonzero(rng.random(n) < config.indel_error_rate):
        k = int(rng.integers(1, length - 1))
        extra = np.uint8(rng.integers(0, 4))
        if rng.random() < 0.5:  # an inserted base; the read keeps its length
            codes[row] = np.concatenate([codes[row, :k], [extra], codes[row, k:-1]])
        else:
            codes[row] = np.concatenate([codes[row, :k], codes[row, k + 1 :], [extra]])
    return _BASES[codes], (phred + 33).astype(np.uint8)


def _fragments(
    sequences: dict[str, str], variants: list[PlantedVariant], config: SimConfig
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """Per chunk of fragments (in random genome order, as a sequencer gives them): read 1 bases and
    qualities, read 2 (paired) bases and qualities."""
    rng = np.random.default_rng(config.seed + 1)
    length = config.read_length
    per_fragment = 2 * length if config.paired else length
    haps, wants = [], []
    for chrom, seq in sequences.items():
        own = [v for v in variants if v.chrom == chrom]
        total = round(config.coverage * len(seq) / per_fragment)
        for hap_index in (0, 1):
            haps.append(_haplotype(seq, own, hap_index))
            wants.append(total // 2 + (total % 2 if hap_index == 0 else 0))
    genome = np.concatenate(haps) if haps else np.zeros(0, dtype=np.uint8)
    sizes = np.array([len(h) for h in haps], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    source = rng.permutation(np.repeat(np.arange(len(haps)), wants))
    n = len(source)
    if config.paired:
        frag = np.rint(rng.normal(config.fragment_mean, config.fragment_sd, n)).astype(np.int64)
    else:
        frag = np.full(n, length, dtype=np.int64)
    frag = np.clip(frag, length, np.maximum(sizes[source], length))
    start = offsets[source] + (rng.random(n) * np.maximum(sizes[source] - frag + 1, 1)).astype(np.int64)
    flip = rng.random(n) < 0.5
    for a in range(0, n, config.reads_per_member):
        part = slice(a, min(a + config.reads_per_member, n))
        k = part.stop - part.start
        f = flip[part][:, None]
        left, left_q = _reads(genome, start[part], np.zeros(k, dtype=bool), config, rng)
        if not config.paired:
            right, right_q = _reads(genome, start[part], np.ones(k, dtype=bool), config, rng)
            yield np.where(f, right, left), np.where(f, right_q, left_q), None, None
            continue
        right, right_q = _reads(genome, start[part] + frag[part] - length, np.ones(k, dtype=bool), config, rng)
        yield (
            np.where(f, right, left),
            np.where(f, right_q, left_q),
            np.where(f, left, right),
            np.where(f, left_q, right_q),
        )


def _fastq(first: int, bases: np.ndarray, quals: np.ndarray, mate: str) -> bytes:
    seqs = bases.tobytes()
    qs = quals.tobytes()
    length = bases.shape[1]
    lines = []
    for i in range(bases.shape[0]):
        a = i * length
        lines.append(b"@sim%d%s\n%s\n+\n%s\n" % (first + i, mate.encode(), seqs[a : a + length], qs[a : a + length]))
    return b"".join(lines)


def truth_vcf(sequences: dict[str, str], variants: Sequence[PlantedVariant], sample: str = "sample") -> str:
    """The planted variants as VCF text (sorted as the reference)."""
    head = ["##fileformat=VCFv4.2", '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']
    head += [f"##contig=<ID={name},length={len(seq)}>" for name, seq in sequences.items()]
    head.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", sample]))
    order = {name: i for i, name in enumerate(sequences)}
    rows = sorted(variants, key=lambda v: (order[v.chrom], v.pos))
    body = [f"{v.chrom}\t{v.pos}\t.\t{v.ref}\t{v.alt}\t.\tPASS\t.\tGT\t{v.genotype}" for v in rows]
    return "\n".join(head + body) + "\n"


def simulate_run(
    reference_url: str,
    out_dir: str,
    config: SimConfig | None = None,
    *,
    contigs: Sequence[str] | None = None,
    crop: int | None = None,
    at: Sequence[tuple[str, int]] = (),
) -> SimulatedRun:
    """Plant variants in a reference and simulate reads from it; writes ``reference.fa`` (the
    sequences used: ``contigs`` only, each cut to its first ``crop`` bases), ``reads_1.fastq.gz``
    and ``reads_2.fastq.gz`` (or ``reads.fastq.gz``) and ``truth.vcf`` under ``out_dir``.
    ``at`` forces a variant at each ``(chrom, 1-based position)`` (where one fits)."""
    config = config or SimConfig()
    sequences = read_fasta(reference_url)
    if contigs is not None:
        sequences = {name: sequences[name] for name in contigs}
    if crop is not None:
        sequences = {name: seq[:crop] for name, seq in sequences.items()}
    variants = plant_variants(sequences, config, at)
    out = out_dir.rstrip("/")
    ref_url = write_fasta(f"{out}/reference.fa", sequences)
    truth_url = f"{out}/truth.vcf"
    storage.put(truth_url, truth_vcf(sequences, variants).encode())
    names = ["reads_1.fastq.gz", "reads_2.fastq.gz"] if config.paired else ["reads.fastq.gz"]
    members: list[list[bytes]] = [[] for _ in names]
    count = 0
    for r1, q1, r2, q2 in _fragments(sequences, variants, config):
        mates = [(r1, q1, "/1" if config.paired else "")] + ([(r2, q2, "/2")] if r2 is not None else [])
        for i, (bases, quals, mate) in enumerate(mates):
            assert quals is not None
            members[i].append(gzip.compress(_fastq(count, bases, quals, mate), compresslevel=1, mtime=0))
        count += r1.shape[0]
    urls = tuple(f"{out}/{name}" for name in names)
    for url, parts in zip(urls, members, strict=True):
        storage.put(url, iter(parts))
    return SimulatedRun(ref_url, urls, truth_url, tuple(variants), count)

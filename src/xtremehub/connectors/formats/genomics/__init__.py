"""Genomics formats: FASTQ.gz (later FASTA, VCF)."""

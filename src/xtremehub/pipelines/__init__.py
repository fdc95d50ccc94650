"""Pipelines: complete scientific workflows built on the public API (executor, storage, connectors).

Each pipeline is a subpackage: :mod:`xtremehub.pipelines.metabolomics` annotates imaging
mass spectrometry datasets METASPACE-style.
"""

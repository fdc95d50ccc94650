"""Built-in formats, one subpackage per domain (genomics, later imaging, geo, text)."""

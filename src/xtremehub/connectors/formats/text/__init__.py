"""Text formats: plain text and CSV, newline-aligned byte partitions."""

"""Geospatial formats: point clouds (LAS, LAZ, COPC) and rasters (Cloud-Optimized GeoTIFF)."""

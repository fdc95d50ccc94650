"""Geospatial formats: Cloud-Optimized GeoTIFF (cog*), point clouds (las*)."""

"""Mesh geometry: point sampling, charts and triangulation, nested level hierarchies."""

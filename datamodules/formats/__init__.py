"""Readers and writers of the real on-disk formats (FORMATS.md), numpy only, no Lightning."""

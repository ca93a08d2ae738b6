"""Dump files, the dump reader, the decoder and shape inference."""

"""Batch jobs over many files or a dataset, on Ray Data."""

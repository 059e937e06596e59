"""Ingestion: validate, store and record DICOM instances, then start the pipeline."""

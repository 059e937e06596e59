"""DICOM attribute readers shared by the stages (parsing lives here or in ingestion, nowhere else)."""

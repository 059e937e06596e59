"""DICOM knowledge shared by the stages: attribute readers, header reading and the one pixel decode path."""

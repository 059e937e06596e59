"""Reporting: the draft report, the FHIR bundle and the CDS view."""

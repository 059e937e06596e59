"""Hilum's audit trail: an AuditEvent for every access to a patient's data and every inference, kept in Hilum's FHIR
store (read through the FHIR API) and exported as syslog to a SIEM or an ATNA audit record repository."""

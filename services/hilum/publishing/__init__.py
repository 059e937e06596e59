"""Delivery of published results to each destination: FHIR server, HL7 v2 over MLLP, PACS."""

"""The FHIR R4 read API over Hilum's published results: a versioned resource store, search, SMART tokens, HTTP."""

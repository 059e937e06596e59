"""CDS Hooks service: discovery, patient-view cards and feedback, from precomputed results."""

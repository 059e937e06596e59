"""Priors: the patient's prior study and the change per finding."""

"""attnx calibration: precision plans and calibration data (arrives with the precision work)."""

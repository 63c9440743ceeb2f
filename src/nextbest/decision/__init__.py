"""Decision layer: offer catalog, consent, eligibility, contact policy, arbitration, reasons."""

"""Reports that measure trained nets and write a generated page under docs/ (scripts/ call them)."""
